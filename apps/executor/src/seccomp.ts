// Berth's RuntimeDefault seccomp profile: everything is allowed except the
// system calls a container has no business making (kernel modules, kexec,
// the kernel keyring, BPF and perf, clock setting, swap, reboot, mounting,
// namespace games, raw I/O ports), which fail with EPERM. A deny list keeps
// every ordinary program working on every architecture; the capability set
// already refuses most of these, the profile closes them even for
// containers given extra capabilities.
const denied = [
  'acct', 'add_key', 'bpf', 'clock_adjtime', 'clock_settime', 'create_module', 'delete_module', 'finit_module', 'fsconfig', 'fsmount', 'fsopen', 'fspick',
  'get_kernel_syms', 'get_mempolicy', 'init_module', 'ioperm', 'iopl', 'kcmp', 'kexec_file_load', 'kexec_load', 'keyctl', 'lookup_dcookie', 'mbind', 'mount',
  'mount_setattr', 'move_mount', 'move_pages', 'name_to_handle_at', 'nfsservctl', 'open_by_handle_at', 'open_tree', 'perf_event_open', 'pivot_root',
  'process_vm_readv', 'process_vm_writev', 'query_module', 'quotactl', 'reboot', 'request_key', 'set_mempolicy', 'setns', 'settimeofday', 'stime', 'swapoff',
  'swapon', 'sysfs', '_sysctl', 'umount', 'umount2', 'unshare', 'uselib', 'userfaultfd', 'ustat', 'vm86', 'vm86old',
];

export function defaultSeccompProfile(): unknown {
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
    syscalls: [{ names: denied, action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
  };
}
