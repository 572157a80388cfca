// The executor's records of pods and containers: one JSON file each under
// the state dir, replaced atomically (write, fsync, rename), loaded at start.
// What a record cannot know (whether a process still runs, its exit code)
// comes from the runtime and conmon's exit files when asked, so a restart of
// the executor loses nothing.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError } from '@berth/errors';
import { isIdPrefix, resolveId } from '@berth/proto';
import { KeyedLock } from './keyed.js';

export interface PodRecord {
  id: string;
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Nanoseconds since the epoch, as a decimal string. */
  createdAt: string;
  state: 'ready' | 'notready';
  hostname: string;
  logDirectory: string;
  runtimeHandler: string;
  hostNetwork: boolean;
  hostIpc: boolean;
  /** 0 POD, 1 CONTAINER, 2 NODE, 3 TARGET */
  pidMode: number;
  ip: string;
  additionalIps: string[];
  cniResult?: Record<string, unknown>;
  portMappings: { hostPort: number; containerPort: number; protocol: string; hostIP: string }[];
  /** Pinned namespaces: net, ipc, uts paths. */
  namespacePaths: { net?: string; ipc?: string; uts?: string };
  pausePid: number;
  /** The pause process's start time, so a reused pid is not taken for it. */
  pauseStart?: string;
  cgroupParent: string;
  dir: string;
  sysctls: Record<string, string>;
  /** The pause's root filesystem when it is the sandbox image's shared one (its snapshot key and mount point); else the pod has its own under its bundle. */
  pauseRootfs?: { key: string; path: string };
}

export interface ContainerRecord {
  id: string;
  podId: string;
  name: string;
  attempt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The image as the request named it, and the resolved image id and name. */
  image: string;
  imageId: string;
  imageName: string;
  createdAt: string;
  startedAt: string;
  finishedAt: string;
  exitCode: number;
  reason: string;
  message: string;
  state: 'created' | 'running' | 'exited';
  logPath: string;
  mounts: { containerPath: string; hostPath: string; readonly: boolean; propagation: number }[];
  dir: string;
  snapshotKey: string;
  /** The rootfs snapshot's writable directory, whose usage is the container's writable layer (records from before it was kept ask the store). */
  upperDir?: string;
  /** Set once an exited container's runtime state is deleted and its rootfs and volumes unmounted (their snapshots stay until RemoveContainer). */
  tornDown?: boolean;
  /** Image volumes: read-only snapshot views mounted under the container's directory. */
  volumes?: { key: string; target: string }[];
  stopSignal: string;
  pid: number;
  /** The container process's start time (see processStart): it is signalled directly only while that process runs. */
  pidStart?: string;
  /** conmon's pid and start time: while it runs without an exit file, the container has not exited. */
  conmonPid?: number;
  conmonStart?: string;
  tty: boolean;
  stdin: boolean;
  /** The container's stdin closes when the first attached client closes its stdin. */
  stdinOnce?: boolean;
  /** The process spec of the container, for ExecSync's environment, user and capabilities. */
  process: { env: string[]; cwd: string; user: { uid: number; gid: number; additionalGids?: number[] }; capabilities?: unknown; noNewPrivileges?: boolean };
  resources?: Record<string, unknown>;
}

export class RecordStore<T extends { id: string }> {
  readonly items = new Map<string, T>();
  /** Writes of one record run one after another; a record deleted or moved away is never written back. */
  private readonly writes = new KeyedLock();
  private readonly gone = new Set<string>();

  /** Ids are never reused, but a stale write may still come a while later (a teardown finishing): remembered for 10 minutes. */
  private forget(id: string): void {
    this.gone.add(id);
    setTimeout(() => this.gone.delete(id), 10 * 60_000).unref();
  }

  constructor(private readonly dir: string) {}

  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith('.json')) {
        if (name.endsWith('.tmp')) await rm(join(this.dir, name), { force: true });
        continue;
      }
      try {
        const record = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as T;
        this.items.set(record.id, record);
      } catch {
        // A record cut by a crash before its rename cannot exist (the rename is atomic); a corrupt one is skipped.
      }
    }
  }

  get(id: string): T | undefined {
    return this.items.get(id);
  }

  /**
   * By full id, or by a unique prefix of one (as crictl shows ids truncated;
   * `resolveId`: an ambiguous prefix is FailedPreconditionError, an empty id
   * InvalidArgumentError); undefined when it names no record. `what` names
   * the records in errors.
   */
  lookup(id: string, what: string): T | undefined {
    return this.items.get(id) ?? resolveId(this.items.values(), id, what, (r) => r.id);
  }

  /**
   * The full id of the record `id` names, for the calls that succeed on
   * something already gone (StopPodSandbox, RemovePodSandbox, StopContainer,
   * RemoveContainer, as the kubelet expects): an id of no record comes back
   * as it is, unless it has the form of a prefix (`isIdPrefix`), which must
   * name the one it stops or removes (NotFoundError) rather than succeed
   * having done nothing.
   */
  idOf(id: string, what: string): string {
    const record = this.lookup(id, what);
    if (record !== undefined) return record.id;
    if (isIdPrefix(id)) throw new NotFoundError(`${what} ${JSON.stringify(id)} not found`);
    return id;
  }

  all(): T[] {
    return [...this.items.values()];
  }

  put(record: T): Promise<void> {
    return this.writes.run(record.id, () => this.write(record));
  }

  private async write(record: T): Promise<void> {
    // A write that was waiting while the record was removed or moved must not bring it back.
    if (this.gone.has(record.id)) return;
    const tmp = join(this.dir, `${record.id}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(record));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, join(this.dir, `${record.id}.json`));
    this.items.set(record.id, record);
  }

  delete(id: string): Promise<void> {
    return this.writes.run(id, async () => {
      this.forget(id);
      await rm(join(this.dir, `${id}.json`), { force: true });
      this.items.delete(id);
    });
  }

  /** Moves a record to another store (one rename of its file, after any write of it in progress): gone from this one, kept in that one. */
  moveTo(id: string, other: RecordStore<T>): Promise<void> {
    return this.writes.run(id, async () => {
      const record = this.items.get(id);
      if (record === undefined) return;
      this.forget(id);
      await rename(join(this.dir, `${id}.json`), join(other.dir, `${id}.json`));
      this.items.delete(id);
      other.items.set(id, record);
    });
  }
}
