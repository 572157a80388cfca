import type { Platform } from './oci-image.js';

const archMap: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };

/** The OCI platform of this node (Go's GOOS/GOARCH names, as registries use). */
export function nodePlatform(): Platform {
  const architecture = archMap[process.arch] ?? process.arch;
  const platform: Platform = { os: 'linux', architecture };
  if (architecture === 'arm64') platform.variant = 'v8';
  return platform;
}
