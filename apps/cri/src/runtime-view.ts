// What the kubelet polls every second (ListPodSandbox, ListContainers, and
// the status of what changed) answered from memory: each answer is fetched
// from the executor once and kept until something changes. Changes are the
// executor's lifecycle events (exits, a pod's pause dying, calls made by
// anyone) and this frontend's own mutating calls; either drops everything
// kept. A fetch that overlapped a change is not kept. Entries also expire
// after a few seconds, so a missed event costs at most that.
import { filterContainers, filterPods, type criV1 } from '@berth/proto';
import type { Backends } from './backends.js';

/** The longest an answer is kept without hearing of a change. */
const maxAgeMs = 5000;

export class RuntimeView {
  private readonly kept = new Map<string, { at: number; value: unknown }>();
  private generation = 0;
  private readonly stop: () => void;

  constructor(private readonly backends: Backends) {
    this.stop = backends.watchContainerEvents(() => this.changed());
  }

  /** Drops everything kept: call after anything that may change a pod or container. */
  changed(): void {
    this.generation++;
    this.kept.clear();
  }

  close(): void {
    this.stop();
  }

  private async keep<T>(key: string, fetch: () => Promise<T>): Promise<T> {
    const hit = this.kept.get(key);
    if (hit !== undefined && Date.now() - hit.at < maxAgeMs) return hit.value as T;
    const generation = this.generation;
    const started = Date.now();
    const value = await fetch();
    if (generation === this.generation) this.kept.set(key, { at: started, value });
    return value;
  }

  async listContainers(r: criV1.ListContainersRequest): Promise<criV1.ListContainersResponse> {
    const all = await this.keep('containers', () => this.backends.executor.listContainers({ filter: undefined }));
    return { containers: filterContainers(all.containers, r.filter) };
  }

  async listPodSandbox(r: criV1.ListPodSandboxRequest): Promise<criV1.ListPodSandboxResponse> {
    const all = await this.keep('pods', () => this.backends.executor.listPodSandbox({ filter: undefined }));
    return { items: filterPods(all.items, r.filter) };
  }

  containerStatus(r: criV1.ContainerStatusRequest): Promise<criV1.ContainerStatusResponse> {
    // Verbose answers carry live details (the pid, the process): always asked for.
    if (r.verbose) return this.backends.executor.containerStatus(r);
    return this.keep(`container/${r.containerId}`, () => this.backends.executor.containerStatus(r));
  }

  podSandboxStatus(r: criV1.PodSandboxStatusRequest): Promise<criV1.PodSandboxStatusResponse> {
    if (r.verbose) return this.backends.executor.podSandboxStatus(r);
    return this.keep(`pod/${r.podSandboxId}`, () => this.backends.executor.podSandboxStatus(r));
  }
}
