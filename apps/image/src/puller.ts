import { createHash, randomUUID } from 'node:crypto';
import { DeadlineExceededError, FailedPreconditionError, InvalidArgumentError, isCategory, NotFoundError, UnavailableError } from '@berth/errors';
import { inSpan, type Logger } from '@berth/observability';
import { formatReference, parseReference, RegistryClient, repositoryName, resolveEndpoints, type ImageReference, type RegistryClientOptions, type RegistryCredentials } from '@berth/registry';
import { layerCompression, MediaType, nodePlatform, parseDigest, sha256Digest, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from '@berth/spec';
import { gcRefContentPrefix, gcRefSnapshot, writableDir, type ImageRecord, type Store } from '@berth/store-api';
import { OciLayoutSource, type ContentSource } from './layout-source.js';
import { applyLayer, StreamedUnpack, type ApplyOptions, type ApplyResult } from './unpack.js';

/** Downloaded bytes gathered before each write into the store. */
const writeBatchBytes = 1024 * 1024;

export interface PullOptions {
  auth?: RegistryCredentials;
}

export interface PullResult {
  /** The image id: its config digest. */
  imageId: string;
  repoDigest: string;
  repoTag?: string;
}

export interface PullerOptions extends RegistryClientOptions {
  store: Store;
  /** Hosts reached over plain http (besides loopback hosts, which always are). */
  insecureHosts?: string[];
  /** containerd-style hosts directory: `<dir>/<registry>/hosts.toml` (mirrors). */
  hostsDir?: string;
  logger: Logger;
  /** Layers downloaded at once. */
  concurrency?: number;
  maxUncompressedLayerBytes?: number;
  platform?: Platform;
  /** Called with per-layer progress (throttled for downloads). */
  onProgress?: (event: { image: string; layer: string; phase: string; bytes: number; total: number }) => void;
}

/** What a pull of `ref` answers: the image id, and the names it is recorded under (`repo@manifest`, and `repo:tag` when pulled by tag). */
function pullResult(ref: ImageReference, imageId: string, manifestDigest: string): PullResult {
  const repoDigest = `${repositoryName(ref)}@${manifestDigest}`;
  return ref.tag === undefined ? { imageId, repoDigest } : { imageId, repoDigest, repoTag: `${repositoryName(ref)}:${ref.tag}` };
}

/** The chain IDs of a layer stack: each names a layer together with everything under it. */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch {
    throw new FailedPreconditionError(`${what} is not valid JSON`);
  }
}

function checkDescriptor(d: Descriptor | undefined, what: string): Descriptor {
  if (d === undefined || typeof d !== 'object') throw new FailedPreconditionError(`${what}: missing descriptor`);
  parseDigest(String(d.digest));
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw new FailedPreconditionError(`${what}: invalid size`);
  if (typeof d.mediaType !== 'string') throw new FailedPreconditionError(`${what}: missing media type`);
  return d;
}

const indexTypes = new Set<string>([MediaType.ociIndex, MediaType.dockerManifestList]);
const manifestTypes = new Set<string>([MediaType.ociManifest, MediaType.dockerManifest]);

/**
 * Whether a document is an index or a manifest, from its structure, checked
 * against the media type it claims: a document that has both shapes, or
 * whose shape and media type disagree, is refused (manifest/index confusion).
 */
export function classify(doc: { manifests?: unknown; config?: unknown; layers?: unknown }, mediaType: string): 'index' | 'manifest' {
  const looksIndex = Array.isArray(doc.manifests);
  const looksManifest = doc.config !== undefined || doc.layers !== undefined;
  if (looksIndex === looksManifest) throw new FailedPreconditionError('the document is neither clearly a manifest nor an index');
  const kind = looksIndex ? 'index' : 'manifest';
  if (mediaType !== '' && (kind === 'index' ? !indexTypes.has(mediaType) : !manifestTypes.has(mediaType))) {
    throw new FailedPreconditionError(`a ${kind} that claims the media type ${mediaType}`);
  }
  return kind;
}

/** Picks this node's manifest from an index: same os and architecture, variant when both name one. */
export function selectPlatform(index: ImageIndex, platform: Platform): Descriptor {
  const candidates = (index.manifests ?? []).filter((m) => m.platform?.os === platform.os && m.platform?.architecture === platform.architecture);
  const exact = candidates.find((m) => platform.variant === undefined || m.platform?.variant === undefined || m.platform.variant === platform.variant);
  if (exact === undefined) throw new NotFoundError(`no manifest for ${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''} in the index`);
  return checkDescriptor(exact, 'index entry');
}

/**
 * Pulls images into the store: resolves the reference, picks this node's
 * platform, downloads the config and layers (several at once, straight into
 * the store's verified ingest) and unpacks each layer into an overlay
 * snapshot as soon as it and its parent are ready, checking each diff ID.
 * A lease protects everything until the image record exists. The same blob
 * or layer asked for by another pull (in this process or another replica)
 * is waited for, not fetched twice.
 */
export class Puller {
  private readonly inflight = new Map<string, Promise<PullResult>>();

  constructor(private readonly options: PullerOptions) {}

  pull(image: string, options: PullOptions = {}): Promise<PullResult> {
    const ref = parseReference(image);
    return this.once(formatReference(ref), async () => {
      // The record under this name is looked up while the registry answers.
      const recorded = this.options.store.getImage(formatReference(ref)).catch(() => undefined);
      const { client, top } = await inSpan('pull: resolve manifest', () => this.resolve(ref, options.auth));
      return (await this.alreadyPulled(ref, top, await recorded)) ?? this.doPull(ref, client, top);
    });
  }

  /**
   * A pull of an image that is here already, by this name and with the
   * manifest the registry names now (the kubelet's re-pull of an
   * `Always` image): answered from the image record, with no lease, blob or
   * snapshot work. Anything else (a new manifest, a name not recorded yet,
   * a document the full path should judge) takes the full path.
   */
  private async alreadyPulled(ref: ImageReference, top: { bytes: Buffer; digest: string; mediaType: string }, existing: ImageRecord | undefined): Promise<PullResult | undefined> {
    let chosen = top.digest;
    try {
      const doc = JSON.parse(top.bytes.toString('utf8')) as { mediaType?: string; manifests?: unknown; config?: unknown; layers?: unknown };
      if (classify(doc, doc.mediaType ?? top.mediaType) === 'index') chosen = selectPlatform(doc as ImageIndex, this.options.platform ?? nodePlatform()).digest;
    } catch {
      return undefined;
    }
    if (existing === undefined || existing.manifestDigest !== chosen) return undefined;
    const result = pullResult(ref, existing.id, chosen);
    if (!existing.names.some((n) => n.name === result.repoDigest)) return undefined;
    this.options.logger.debug({ image: formatReference(ref), id: existing.id }, 'already pulled, unchanged in the registry');
    return result;
  }

  /** Imports the image `name` from an OCI image layout directory: no registry involved. */
  importLayout(dir: string, name: string): Promise<PullResult> {
    const ref = parseReference(name);
    const source = new OciLayoutSource(dir);
    return this.once(`layout:${formatReference(ref)}`, async () => this.doPull(ref, source, await source.manifest(ref, ref.digest ?? ref.tag ?? 'latest')));
  }

  private once(key: string, run: () => Promise<PullResult>): Promise<PullResult> {
    const running = this.inflight.get(key);
    if (running) return running;
    const p = run().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async doPull(ref: ImageReference, client: ContentSource, top: { bytes: Buffer; digest: string; mediaType: string }): Promise<PullResult> {
    const { store, logger } = this.options;
    const started = Date.now();
    const lease = await store.createLease({ expiresAt: new Date(Date.now() + 6 * 3600 * 1000), labels: { image: formatReference(ref) } });
    // Store writes that run alongside the downloads; all are done before the lease goes.
    const stored: Array<Promise<void>> = [];
    const alongside = (write: Promise<void>): void => {
      write.catch(() => undefined);
      stored.push(write);
    };
    try {
      let manifestBytes = top.bytes;
      let manifestDigest = top.digest;
      let doc = parseJson<{ schemaVersion?: number; mediaType?: string; manifests?: unknown; config?: unknown; layers?: unknown }>(top.bytes, 'manifest');
      if (doc.schemaVersion === 1) throw new FailedPreconditionError('image manifest schema 1 is not supported; rebuild or re-push the image with a current tool');
      const mediaType = doc.mediaType ?? top.mediaType;
      const isIndex = classify(doc, mediaType) === 'index';
      if (isIndex) {
        alongside(this.putBlob(top.bytes, top.digest, lease.id, {}));
        const chosen = selectPlatform(doc as ImageIndex, this.options.platform ?? nodePlatform());
        const m = await client.manifest(ref, chosen.digest);
        if (m.digest !== chosen.digest) throw new FailedPreconditionError('manifest digest does not match the index');
        manifestBytes = m.bytes;
        manifestDigest = m.digest;
        doc = parseJson(m.bytes, 'manifest');
        if (classify(doc, doc.mediaType ?? m.mediaType) !== 'manifest') throw new FailedPreconditionError('an index entry points at another index');
      }
      const manifest = doc as ImageManifest;
      if (manifest.schemaVersion !== 2 || !Array.isArray(manifest.layers)) throw new FailedPreconditionError('not an image manifest');
      const configDesc = checkDescriptor(manifest.config, 'config');
      if (configDesc.size > 8 * 1024 * 1024) throw new FailedPreconditionError('image config larger than 8 MiB');
      const layers = manifest.layers.map((l, i) => checkDescriptor(l, `layer ${i}`));
      for (const l of layers) if (layerCompression(l.mediaType) === undefined) throw new FailedPreconditionError(`unsupported layer media type ${l.mediaType}`);

      // The manifest goes into the store while the blobs download: it does not depend on them
      // (the lease keeps it until the image record holds it).
      const labels: Record<string, string> = { [`${gcRefContentPrefix}0`]: configDesc.digest };
      layers.forEach((l, i) => (labels[`${gcRefContentPrefix}${i + 1}`] = l.digest));
      alongside(this.putBlob(manifestBytes, manifestDigest, lease.id, labels));

      // The config and the layers download at once. The config goes through the ingest like a
      // layer (its lock makes one download of a config that several replicas want at once); the
      // layers' labels and every unpack wait for its diff IDs.
      const layerChain = inSpan('pull: config blob', () => this.fetchBlob(client, ref, configDesc, lease.id, {}, { keep: true })).then(async (downloaded) => {
        const config = parseJson<ImageConfig>(downloaded ?? (await this.readBlob(configDesc.digest)), 'image config');
        const diffIds = config.rootfs?.diff_ids;
        if (!Array.isArray(diffIds) || diffIds.length !== layers.length) throw new FailedPreconditionError(`image config lists ${Array.isArray(diffIds) ? diffIds.length : 0} diff IDs for ${layers.length} layers`);
        for (const d of diffIds) parseDigest(d);
        return { diffIds, chain: chainIds(diffIds) };
      });
      layerChain.catch(() => undefined);

      // Downloads run ahead (bounded); unpacking follows in order.
      const limit = this.options.concurrency ?? 4;
      const downloads: Array<Promise<void>> = [];
      let running = 0;
      const queue: Array<() => void> = [];
      const slot = async <T>(fn: () => Promise<T>): Promise<T> => {
        if (running >= limit) await new Promise<void>((r) => queue.push(r));
        running += 1;
        try {
          return await fn();
        } finally {
          running -= 1;
          queue.shift()?.();
        }
      };
      const image = formatReference(ref);
      const report = (layer: Descriptor, phase: string, bytes: number): void => this.options.onProgress?.({ image, layer: layer.digest, phase, bytes, total: layer.size });
      for (const layer of layers) report(layer, 'waiting', 0);
      const streams = layers.map((layer) => new StreamedUnpack({ prepare: () => this.prepareExtract(layer.digest, lease.id), remove: (key) => store.snapshots.remove(key) }, this.applyOptions(layer)));
      for (const [i, layer] of layers.entries()) {
        let last = 0;
        const progress = (bytes: number): void => {
          if (Date.now() - last < 250) return;
          last = Date.now();
          report(layer, 'downloading', bytes);
        };
        const labels = layerChain.then(({ chain }) => ({ [gcRefSnapshot]: chain[i]! }));
        downloads.push(slot(() => inSpan('pull: layer download', () => this.fetchBlob(client, ref, layer, lease.id, labels, { progress, streamed: streams[i]! })).then(() => report(layer, 'downloaded', layer.size))));
      }
      downloads.forEach((d) => d.catch(() => undefined));
      // Each layer unpacks into its own directory while it downloads (or, when
      // that could not be followed, once it is downloaded), in parallel with the
      // others (a layer's content does not depend on the layers below it);
      // commits then go in order, each on its parent. Each waits for its
      // download even when the config failed, so nothing is still writing once
      // the lease goes.
      const unpacked = layers.map((layer, i) =>
        downloads[i]!.then(
          async () => {
            const { diffIds, chain } = await layerChain.catch(async (err: unknown) => {
              await streams[i]!.discard();
              throw err;
            });
            report(layer, 'unpacking', layer.size);
            return inSpan('pull: layer unpack', () => this.unpackLayer(layer, diffIds[i]!, chain[i]!, lease.id, streams[i]!));
          },
          async (err: unknown) => {
            await streams[i]!.discard();
            throw err;
          },
        ),
      );
      unpacked.forEach((u) => u.catch(() => undefined));
      let failure: unknown;
      const chain = await layerChain.then((c) => c.chain).catch((err: unknown) => {
        failure = err;
        return [];
      });
      for (const [i, layer] of layers.entries()) {
        try {
          const key = await unpacked[i]!;
          if (failure === undefined && key !== undefined) await this.commitLayer(key, chain[i]!, i === 0 ? undefined : chain[i - 1], lease.id);
          if (failure === undefined) report(layer, 'done', layer.size);
        } catch (err) {
          failure ??= err;
        }
      }
      if (failure !== undefined) {
        // Nothing half-made: every layer unpacked but not committed goes.
        for (const u of unpacked) {
          const key = await u.catch(() => undefined);
          if (key !== undefined) await store.snapshots.remove(key).catch(() => undefined);
        }
        throw failure;
      }

      await Promise.all(stored);
      const result = pullResult(ref, configDesc.digest, manifestDigest);
      const { repoDigest, repoTag } = result;
      const existing = await store.getImage(configDesc.digest).catch(() => undefined);
      const names = new Map((existing?.names ?? []).map((n) => [n.name, n]));
      names.set(repoDigest, { name: repoDigest, kind: 'digest' });
      if (repoTag) names.set(repoTag, { name: repoTag, kind: 'tag' });
      const size = configDesc.size + layers.reduce((a, l) => a + l.size, 0);
      await inSpan('pull: image record', () => store.putImage({ id: configDesc.digest, manifestDigest, size, topChainId: chain[chain.length - 1] ?? '', pinned: existing?.pinned ?? false, names: [...names.values()] }));
      logger.info({ image: formatReference(ref), id: configDesc.digest, layers: layers.length, ms: Date.now() - started }, 'pulled');
      return result;
    } finally {
      await Promise.allSettled(stored);
      await store.deleteLease(lease.id).catch(() => undefined);
    }
  }

  /**
   * Tries the mirrors of the reference's registry in order, then the
   * registry itself; the first endpoint that has the manifest serves the
   * whole pull. Image names stay the upstream ones.
   */
  private async resolve(ref: ImageReference, auth: RegistryCredentials | undefined): Promise<{ client: RegistryClient; top: { bytes: Buffer; digest: string; mediaType: string } }> {
    const endpoints = resolveEndpoints(ref.domain, this.options.hostsDir, this.options.insecureHosts);
    let last: unknown;
    for (const endpoint of endpoints) {
      const client = new RegistryClient(endpoint, auth, this.options);
      try {
        return { client, top: await client.manifest(ref, ref.digest ?? ref.tag ?? 'latest') };
      } catch (err) {
        last = err;
        const fallThrough = isCategory(err, 'not-found') || isCategory(err, 'unavailable') || isCategory(err, 'deadline-exceeded') || (!endpoint.upstream && isCategory(err, 'permission-denied'));
        if (!fallThrough) throw err;
        if (!endpoint.upstream) this.options.logger.warn({ mirror: endpoint.host, image: formatReference(ref), err: (err as Error).message }, 'mirror failed; trying the next endpoint');
      }
    }
    throw last;
  }

  private async readBlob(digest: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.options.store.content.read(digest)) chunks.push(Buffer.from(c));
    return Buffer.concat(chunks);
  }

  /** Puts a manifest or index into the store in one call (one already there joins the lease and gets the labels). */
  private async putBlob(bytes: Buffer, digest: string, leaseId: string, labels: Record<string, string>): Promise<void> {
    if (sha256Digest(bytes) !== digest) throw new FailedPreconditionError(`content does not match ${digest}`);
    await this.options.store.content.put(bytes, { ref: `put-${digest}`, expectedDigest: digest, leaseId, labels });
  }

  /**
   * Puts one blob into the store, verified: skipped when already there,
   * waited for when another pull holds its ingest, resumed with Range after a
   * broken download (three attempts). With `keep`, returns the bytes when
   * this call downloaded all of them (the store has checked their digest by
   * the time it returns); the blob's size is the caller's to bound.
   */
  private async fetchBlob(
    client: ContentSource,
    ref: ImageReference,
    desc: Descriptor,
    leaseId: string,
    labelsWanted: Record<string, string> | Promise<Record<string, string>>,
    { progress, streamed, keep = false }: { progress?: (bytes: number) => void; streamed?: StreamedUnpack; keep?: boolean } = {},
  ): Promise<Buffer | undefined> {
    const { store } = this.options;
    for (let attempt = 0; ; attempt++) {
      // A new blob is the common case: the first ingest open says when it is already there.
      if (attempt > 0) {
        try {
          const info = await store.content.info(desc.digest);
          if (info.size !== desc.size) throw new FailedPreconditionError(`blob ${desc.digest} is ${info.size} bytes in the store, the manifest says ${desc.size}`);
          await store.addLeaseResource(leaseId, { kind: 'blob', ref: desc.digest });
          const labels = await labelsWanted;
          if (Object.keys(labels).length > 0) await store.content.updateLabels(desc.digest, { ...info.labels, ...labels });
          return undefined;
        } catch (err) {
          if (!isCategory(err, 'not-found')) throw err;
        }
      }
      let writer;
      try {
        writer = await store.content.writer({ ref: `pull-${desc.digest}`, expectedDigest: desc.digest, expectedSize: desc.size, leaseId });
      } catch (err) {
        if (isCategory(err, 'already-exists')) continue;
        if (isCategory(err, 'unavailable') && /in progress/.test((err as Error).message)) {
          // Another pull is fetching it: wait for it to land.
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        throw err;
      }
      try {
        const stall = new AbortController();
        const stallMs = this.options.progressTimeoutMs ?? 60_000;
        // Re-armed by every chunk (refresh: no new timer per chunk).
        const timer = setTimeout(() => stall.abort(), stallMs);
        streamed?.begin(writer.offset());
        const res = await client.blob(ref, desc.digest, writer.offset(), stall.signal);
        if (res.status === 200 && writer.offset() > 0) {
          // The registry ignored the range: start over.
          await writer.abort();
          writer = await store.content.writer({ ref: `pull-${desc.digest}`, expectedDigest: desc.digest, expectedSize: desc.size, leaseId });
        }
        const kept: Buffer[] | undefined = keep && writer.offset() === 0 ? [] : undefined;
        // The body arrives in chunks of 16–64 KiB: written in batches of 1 MiB (one writev each,
        // the chunks never joined), a layer costs a few hundred file writes instead of thousands.
        // One batch is written while the next arrives, so the socket is read on during each write.
        const w = writer;
        let batch: Buffer[] = [];
        let batched = 0;
        let writing: Promise<void> = Promise.resolve();
        const flush = async (): Promise<void> => {
          const previous = writing;
          if (batched > 0) {
            const data = batch;
            batch = [];
            batched = 0;
            // The streamed unpack takes the same batch while the store writes it.
            writing = previous.then(async () => {
              await Promise.all([w.write(data), streamed?.push(data)]);
              progress?.(w.offset());
            });
            writing.catch(() => undefined);
          }
          await previous;
        };
        try {
          for await (const chunk of res.body) {
            timer.refresh();
            batch.push(chunk as Buffer);
            kept?.push(chunk as Buffer);
            batched += (chunk as Buffer).length;
            if (batched >= writeBatchBytes) await flush();
          }
          await flush();
          await writing;
        } catch (err) {
          streamed?.spoil();
          // What arrived before the break is good: store it, so the retry resumes after it.
          await flush().catch(() => undefined);
          await writing.catch(() => undefined);
          if (stall.signal.aborted) throw new DeadlineExceededError(`download ${desc.digest}: no bytes for ${stallMs / 1000} s`, { cause: err });
          throw err;
        } finally {
          clearTimeout(timer);
        }
        // The labels may wait for the config; they go in with the commit.
        await writer.commit(await labelsWanted);
        return kept === undefined ? undefined : Buffer.concat(kept);
      } catch (err) {
        await writer.close().catch(() => undefined);
        const retryable = isCategory(err, 'unavailable') || isCategory(err, 'deadline-exceeded') || (err instanceof Error && !('category' in err));
        if (!retryable || attempt >= 2) throw err instanceof Error && 'category' in err ? err : new UnavailableError(`download ${desc.digest}: ${(err as Error).message}`, { cause: err });
        this.options.logger.warn({ digest: desc.digest, attempt, err: (err as Error).message }, 'blob download failed; resuming');
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
      }
    }
  }

  /**
   * Unpacks a layer into a snapshot of its own (prepared without a parent)
   * and checks its diff ID; returns the snapshot's key, or undefined when the
   * layer is already committed (by an earlier pull). A layer applied while it
   * downloaded is only checked; otherwise it is read back from the store.
   */
  private async unpackLayer(layer: Descriptor, diffId: string, chainId: string, leaseId: string, streamed: StreamedUnpack): Promise<string | undefined> {
    const { store } = this.options;
    let applied: { key: string; result: ApplyResult } | undefined;
    try {
      if (await this.haveSnapshot(chainId, leaseId)) {
        await streamed.discard();
        return undefined;
      }
      applied = await streamed.finish(layer.size);
    } catch (err) {
      await streamed.discard();
      throw err;
    }
    if (applied === undefined) {
      const { key, root } = await this.prepareExtract(chainId, leaseId);
      try {
        applied = { key, result: await applyLayer(store.content.read(layer.digest), root, this.applyOptions(layer)) };
      } catch (err) {
        await store.snapshots.remove(key).catch(() => undefined);
        throw err;
      }
    }
    if (applied.result.diffId !== diffId) {
      await store.snapshots.remove(applied.key).catch(() => undefined);
      throw new FailedPreconditionError(`layer ${layer.digest} unpacks to ${applied.result.diffId}, but the config says ${diffId}`);
    }
    return applied.key;
  }

  /** A parentless snapshot to unpack a layer into (named after `digest`), and the directory it writes to. */
  private async prepareExtract(digest: string, leaseId: string): Promise<{ key: string; root: string }> {
    const { store } = this.options;
    const key = `extract-${digest.slice(7, 27)}-${randomUUID()}`;
    const mounts = await store.snapshots.prepare(key, undefined, { leaseId });
    const root = writableDir(mounts[0]!);
    if (root === undefined) {
      await store.snapshots.remove(key).catch(() => undefined);
      throw new InvalidArgumentError('the store gave no writable directory');
    }
    return { key, root };
  }

  private applyOptions(layer: Descriptor): ApplyOptions {
    return { compression: layerCompression(layer.mediaType) ?? 'none', maxUncompressedBytes: this.options.maxUncompressedLayerBytes ?? 64 * 1024 ** 3 };
  }

  private async haveSnapshot(chainId: string, leaseId: string): Promise<boolean> {
    const { store } = this.options;
    try {
      await store.snapshots.stat(chainId);
      await store.addLeaseResource(leaseId, { kind: 'snapshot', ref: chainId });
      return true;
    } catch (err) {
      if (!isCategory(err, 'not-found')) throw err;
      return false;
    }
  }

  /** Commits an unpacked layer as `chainId` on its parent; when another pull committed it first, that one serves. */
  private async commitLayer(key: string, chainId: string, parent: string | undefined, leaseId: string): Promise<void> {
    const { store } = this.options;
    try {
      await store.snapshots.commit(chainId, key, { leaseId, ...(parent === undefined ? {} : { parent }) });
    } catch (err) {
      await store.snapshots.remove(key).catch(() => undefined);
      if (isCategory(err, 'already-exists') && (await this.haveSnapshot(chainId, leaseId))) return;
      throw err;
    }
  }
}
