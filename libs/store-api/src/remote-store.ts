import { open, type FileHandle } from 'node:fs/promises';
import { InternalError, InvalidArgumentError } from '@berth/errors';
import { storeV1 } from '@berth/proto';
import { createClient, type BidiCall, type ClientOpts, type PromiseClient } from '@berth/rpc';
import {
  contentFromWire,
  fsUsageFromWire,
  imageFromWire,
  imageToWire,
  ingestFromWire,
  leaseFromWire,
  mountsFromWire,
  snapshotFromWire,
  toNanos,
  usageFromWire,
  writerOptionsToWire,
} from './convert.js';
import { dataLength, storeIoError, writeAllAt, type WriteData } from './file-io.js';
import { maxPutBytes } from './types.js';
import type {
  ContentInfo,
  ContentStore,
  ContentWriter,
  FsUsage,
  GcResult,
  ImageRecord,
  IngestStatus,
  Labels,
  Lease,
  LeaseResource,
  Mount,
  SnapshotInfo,
  SnapshotOptions,
  Snapshotter,
  Store,
  Usage,
  WriterOptions,
} from './types.js';

type StoreClient = PromiseClient<typeof storeV1.StoreService>;

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

/**
 * Encodes an IngestRequest. A write message (field 2: IngestWrite {offset = 1,
 * data = 2}) is framed by hand so its payload is copied once; the generic
 * encoder copies a 1 MiB payload several times, which made it the bottleneck
 * of an upload. Other messages use the generated encoder. Both produce the
 * same protobuf bytes.
 */
export function encodeIngestRequest(message: storeV1.IngestRequest): Buffer {
  const write = message.write;
  if (write === undefined || message.open !== undefined || message.commit !== undefined) return storeV1.StoreService.ingest.requestSerialize(message);
  const offset = Number(write.offset);
  const inner = [...(offset === 0 ? [] : [0x08, ...varint(offset)]), ...(write.data.length === 0 ? [] : [0x12, ...varint(write.data.length)])];
  const header = Buffer.from([0x12, ...varint(inner.length + write.data.length), ...inner]);
  return Buffer.concat([header, write.data], header.length + write.data.length);
}

const storeService = { ...storeV1.StoreService, ingest: { ...storeV1.StoreService.ingest, requestSerialize: encodeIngestRequest } };

/** Bytes per write message: large enough to amortise framing, well under the message limit. */
const writeChunk = 1024 * 1024;
/** With local writes, how many bytes are written into the file between reports to the store. */
const reportEvery = 4 * 1024 * 1024;

class RemoteWriter implements ContentWriter {
  private done = false;
  private reported: number;

  /**
   * `file` is the ingest's data file when the store granted local writes and
   * this process could open it; without it the bytes go over the stream.
   */
  constructor(
    readonly ref: string,
    private readonly call: BidiCall<storeV1.IngestRequest, storeV1.IngestResponse>,
    private position: number,
    private readonly discard: () => Promise<void>,
    private readonly file: FileHandle | undefined,
  ) {
    this.reported = position;
  }

  offset(): number {
    return this.position;
  }

  async write(data: WriteData): Promise<void> {
    if (this.file !== undefined) {
      try {
        await writeAllAt(this.file, data, this.position);
      } catch (err) {
        // Nothing half-made stays: the ingest is discarded, as the store does when its own write fails.
        await this.abort().catch(() => undefined);
        throw storeIoError(err, `write ingest ${this.ref}`);
      }
      this.position += dataLength(data);
      if (this.position - this.reported >= reportEvery) await this.report();
      return;
    }
    if (!(data instanceof Uint8Array)) data = Buffer.concat(data);
    for (let i = 0; i < data.length; i += writeChunk) {
      const chunk = data.subarray(i, Math.min(i + writeChunk, data.length));
      await this.call.send({ write: { offset: BigInt(this.position), data: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) } });
      this.position += chunk.length;
    }
  }

  /** Tells the store how far the data file is written, so it hashes that much while this side writes on. */
  private async report(): Promise<void> {
    this.reported = this.position;
    await this.call.send({ written: { offset: BigInt(this.position) } });
  }

  async commit(labels?: Labels): Promise<ContentInfo> {
    if (this.file !== undefined) {
      await this.file.close();
      if (this.position !== this.reported) await this.report();
    }
    await this.call.send({ commit: { labels: labels ?? {} } });
    this.call.end();
    this.done = true;
    const reply = await this.call.next();
    if (reply?.committed === undefined) throw new InternalError(`ingest ${this.ref}: the store ended the call without committing`);
    return contentFromWire(reply.committed);
  }

  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    if (this.file !== undefined) {
      await this.file.close().catch(() => undefined);
      // What was written and not yet reported still counts for a resume: report it.
      if (this.position !== this.reported) await this.report().catch(() => undefined);
    }
    this.call.end();
    // Wait for the server to finish, so the ref is free when close resolves.
    await this.call.next().catch(() => undefined);
  }

  async abort(): Promise<void> {
    await this.close();
    await this.discard();
  }
}

/**
 * The store over its internal gRPC API: the same interfaces as the local
 * store, so callers cannot tell them apart.
 */
export class RemoteStore implements Store {
  readonly content: ContentStore;
  readonly snapshots: Snapshotter;
  private readonly client: StoreClient;

  /**
   * `localWrites` (default true) asks the store for local writes on each
   * ingest: when the store grants them and this process can open the data
   * file, blob bytes are written straight into the store's file instead of
   * crossing the socket; reads of committed blobs likewise open the blob's
   * file when they can.
   */
  constructor(address: string, options: ClientOpts & { localWrites?: boolean } = {}) {
    const { localWrites = true, ...clientOptions } = options;
    const client = createClient(storeService, address, clientOptions);
    this.client = client;
    this.content = {
      info: async (digest) => contentFromWire(await client.getContentInfo({ digest })),
      read: (digest, range) =>
        (async function* () {
          const offset = range?.offset ?? 0;
          const length = range?.length ?? 0;
          // On the store's host, the blob's file is read directly; elsewhere the bytes come over the stream.
          const local = localWrites ? await client.contentPath({ digest }).catch(() => undefined) : undefined;
          const file = local === undefined ? undefined : await open(local.path, 'r').catch(() => undefined);
          if (file !== undefined) {
            try {
              const size = Number(local!.size);
              if (offset > size) throw new InvalidArgumentError(`offset ${offset} is past the end of ${digest} (${size} bytes)`);
              const end = length === 0 ? size : Math.min(size, offset + length);
              if (end > offset) for await (const chunk of file.createReadStream({ start: offset, end: end - 1, highWaterMark: 1024 * 1024, autoClose: false })) yield chunk as Buffer;
            } finally {
              await file.close();
            }
            return;
          }
          for await (const chunk of client.readContent({ digest, offset: BigInt(offset), length: BigInt(length) })) yield chunk.data as Uint8Array;
        })(),
      writer: async (options: WriterOptions): Promise<ContentWriter> => {
        const call = client.ingest();
        await call.send({ open: writerOptionsToWire(options, localWrites) });
        const opened = await call.next();
        if (opened?.offset === undefined) throw new InternalError(`ingest ${options.ref}: the store did not answer the open`);
        // A store in another mount namespace or on another host: its path is not ours, so stream.
        const file = opened.localPath === '' ? undefined : await open(opened.localPath, 'r+').catch(() => undefined);
        return new RemoteWriter(options.ref, call, Number(opened.offset), async () => void (await client.abortIngest({ ref: options.ref })), file);
      },
      importFile: async (path, options) => contentFromWire(await client.importContent({ path, ingest: writerOptionsToWire(options) })),
      put: async (data, options) => {
        // Refused here as the store would refuse it, without sending megabytes first.
        if (data.length > maxPutBytes) throw new InvalidArgumentError(`put: ${data.length} bytes is more than ${maxPutBytes}; use an ingest`);
        return contentFromWire(await client.putContent({ ingest: writerOptionsToWire(options), data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) }));
      },
      ingestStatus: async (ref): Promise<IngestStatus> => ingestFromWire(await client.ingestStatus({ ref })),
      listIngests: async () => (await client.listIngests({})).items.map(ingestFromWire),
      abortIngest: async (ref) => void (await client.abortIngest({ ref })),
      list: async () => (await client.listContent({})).items.map(contentFromWire),
      updateLabels: async (digest, labels) => contentFromWire(await client.updateContentLabels({ digest, labels })),
      delete: async (digest) => void (await client.deleteContent({ digest })),
    };
    const prepareRequest = (key: string, parent: string, options?: SnapshotOptions): storeV1.PrepareRequest => ({ key, parent, labels: options?.labels ?? {}, leaseId: options?.leaseId ?? '' });
    this.snapshots = {
      stat: async (key): Promise<SnapshotInfo> => snapshotFromWire(await client.statSnapshot({ key })),
      list: async () => (await client.listSnapshots({})).items.map(snapshotFromWire),
      prepare: async (key, parent, options): Promise<Mount[]> => mountsFromWire(await client.prepare(prepareRequest(key, parent ?? '', options))),
      view: async (key, parent, options) => mountsFromWire(await client.view(prepareRequest(key, parent, options))),
      mounts: async (key) => mountsFromWire(await client.mounts({ key })),
      commit: async (name, key, options) => snapshotFromWire(await client.commit({ name, key, labels: options?.labels ?? {}, leaseId: options?.leaseId ?? '', parent: options?.parent ?? '' })),
      remove: async (key) => void (await client.removeSnapshot({ key })),
      usage: async (key): Promise<Usage> => usageFromWire(await client.snapshotUsage({ key })),
    };
  }

  async putImage(record: Omit<ImageRecord, 'createdAt'>): Promise<ImageRecord> {
    return imageFromWire(await this.client.putImage(imageToWire({ ...record, createdAt: new Date(0) })));
  }

  async getImage(ref: string): Promise<ImageRecord> {
    return imageFromWire(await this.client.getImage({ ref }));
  }

  async listImages(): Promise<ImageRecord[]> {
    return (await this.client.listImages({})).items.map(imageFromWire);
  }

  async removeImageName(name: string): Promise<{ imageRemoved: boolean }> {
    return { imageRemoved: (await this.client.removeImageName({ ref: name })).imageRemoved };
  }

  async deleteImage(ref: string): Promise<void> {
    await this.client.deleteImage({ ref });
  }

  async createLease(options: { id?: string; expiresAt?: Date; labels?: Labels } = {}): Promise<Lease> {
    return leaseFromWire(await this.client.createLease({ id: options.id ?? '', expiresAt: options.expiresAt === undefined ? 0n : toNanos(options.expiresAt), labels: options.labels ?? {} }));
  }

  async deleteLease(id: string): Promise<void> {
    await this.client.deleteLease({ id });
  }

  async listLeases(): Promise<Lease[]> {
    return (await this.client.listLeases({})).items.map(leaseFromWire);
  }

  async addLeaseResource(id: string, resource: LeaseResource): Promise<void> {
    await this.client.addLeaseResource({ leaseId: id, resource });
  }

  async removeLeaseResource(id: string, resource: LeaseResource): Promise<void> {
    await this.client.removeLeaseResource({ leaseId: id, resource });
  }

  async garbageCollect(): Promise<GcResult> {
    return this.client.garbageCollect({});
  }

  async fsUsage(): Promise<FsUsage> {
    return fsUsageFromWire(await this.client.fsUsage({}));
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
