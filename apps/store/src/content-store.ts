import { createHash, type Hash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  isCategory,
  wrap,
} from '@berth/errors';
import type { Db } from '@berth/db';
import { parseDigest } from '@berth/spec';
import {
  dataLength,
  maxPutBytes,
  storeIoError,
  validateDigest,
  validateLabels,
  validateName,
  validateSize,
  writeAllAt,
  type ContentInfo,
  type ContentStore,
  type IngestStatus,
  type Labels,
  type LocalFileWriter,
  type WriteData,
  type WriterOptions,
} from '@berth/store-api';
import type { RwLock } from './locks.js';
import { blobExists } from './queries.js';

interface IngestMeta {
  ref: string;
  expectedDigest: string;
  total: number;
  startedAt: string;
}

export interface LocalContentDeps {
  db: Db;
  /** The content directory: blobs/ and ingest/ go below it. */
  root: string;
  gcLock: RwLock;
  /** Records a lease resource; throws not-found for an unknown lease. */
  addLeaseResource(leaseId: string, kind: 'blob' | 'ingest', ref: string): Promise<void>;
}

const parseLabels = (text: string): Labels => JSON.parse(text) as Labels;
const toInfo = (row: { digest: string; size: bigint; labels: string; createdAt: Date }): ContentInfo => ({
  digest: row.digest,
  size: Number(row.size),
  labels: parseLabels(row.labels),
  createdAt: row.createdAt,
});

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === code;
}


/**
 * The content-addressable blob store on the local disk. Blobs live in
 * blobs/<alg>/<hex>; an ingest writes to ingest/<sha256(ref)>/data (the ref
 * itself never becomes a path) and becomes a blob by an atomic rename after
 * its size and digest are verified, so a half or wrong blob is never visible.
 * The database records every committed blob; the two are reconciled at start.
 */
export class LocalContentStore implements ContentStore {
  private readonly locked = new Set<string>();

  constructor(private readonly deps: LocalContentDeps) {}

  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.deps.root, 'blobs', algorithm, hex);
  }

  ingestDir(ref: string): string {
    return join(this.deps.root, 'ingest', createHash('sha256').update(ref).digest('hex'));
  }

  /** True while a writer holds `ref`. */
  isLocked(ref: string): boolean {
    return this.locked.has(ref);
  }

  async info(digest: string): Promise<ContentInfo> {
    validateDigest(digest);
    const row = await this.deps.db.blob.findUnique({ where: { digest } });
    if (row === null) throw new NotFoundError(`content ${digest} not found`);
    return toInfo(row);
  }

  async *read(digest: string, range: { offset?: number; length?: number } = {}): AsyncIterable<Uint8Array> {
    const info = await this.info(digest);
    const offset = validateSize('offset', range.offset ?? 0);
    const length = validateSize('length', range.length ?? 0);
    if (offset > info.size) throw new InvalidArgumentError(`offset ${offset} is past the end of ${digest} (${info.size} bytes)`);
    const end = length === 0 ? info.size : Math.min(info.size, offset + length);
    if (end === offset) return;
    const stream = createReadStream(this.blobPath(digest), { start: offset, end: end - 1, highWaterMark: 1024 * 1024 });
    try {
      for await (const chunk of stream) yield chunk as Buffer;
    } catch (err) {
      throw storeIoError(err, `read ${digest}`);
    }
  }

  async list(): Promise<ContentInfo[]> {
    return (await this.deps.db.blob.findMany({ orderBy: { createdAt: 'asc' } })).map(toInfo);
  }

  async updateLabels(digest: string, labels: Labels): Promise<ContentInfo> {
    validateDigest(digest);
    const clean = validateLabels(labels);
    return this.deps.gcLock.shared(async () => {
      try {
        return toInfo(await this.deps.db.blob.update({ where: { digest }, data: { labels: JSON.stringify(clean) } }));
      } catch (err) {
        throw new NotFoundError(`content ${digest} not found`, { cause: err });
      }
    });
  }

  async delete(digest: string): Promise<void> {
    validateDigest(digest);
    const removed = await this.deps.db.blob.deleteMany({ where: { digest } });
    if (removed.count === 0) throw new NotFoundError(`content ${digest} not found`);
    await rm(this.blobPath(digest), { force: true });
  }

  async writer(options: WriterOptions): Promise<LocalFileWriter> {
    const ref = validateName('ingest ref', options.ref);
    const expectedDigest = validateDigest(options.expectedDigest);
    const total = validateSize('expected size', options.expectedSize ?? 0);
    const labels = validateLabels(options.labels);
    if (options.leaseId !== undefined && options.leaseId !== '') validateName('lease id', options.leaseId);
    if (this.locked.has(ref)) throw new UnavailableError(`ingest ${ref} is in progress by another writer`);
    this.locked.add(ref);
    try {
      if (await blobExists(this.deps.db, expectedDigest)) throw new AlreadyExistsError(`content ${expectedDigest} already exists`);
      if (options.leaseId) await this.deps.addLeaseResource(options.leaseId, 'ingest', ref);
      const dir = this.ingestDir(ref);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const metaPath = join(dir, 'meta.json');
      let meta: IngestMeta | undefined;
      try {
        meta = JSON.parse(await readFile(metaPath, 'utf8')) as IngestMeta;
      } catch {
        meta = undefined;
      }
      const fresh = meta === undefined || meta.expectedDigest !== expectedDigest || meta.ref !== ref || (total !== 0 && meta.total !== 0 && meta.total !== total);
      if (fresh) {
        meta = { ref, expectedDigest, total, startedAt: new Date().toISOString() };
        await writeFile(metaPath, JSON.stringify(meta));
      }
      const handle = await open(join(dir, 'data'), fresh ? 'w+' : 'a+');
      const hash = createHash(parseDigest(expectedDigest).algorithm);
      let offset = 0;
      if (!fresh) {
        // Resuming: the hash must cover what is already there.
        for await (const chunk of handle.createReadStream({ start: 0, autoClose: false, highWaterMark: 1024 * 1024 })) {
          hash.update(chunk as Buffer);
          offset += (chunk as Buffer).length;
        }
      }
      return new LocalWriter(this, this.deps, { ref, expectedDigest, total: meta!.total || total, labels, leaseId: options.leaseId ?? '', dir, handle, hash, offset });
    } catch (err) {
      this.locked.delete(ref);
      throw err;
    }
  }

  async importFile(path: string, options: WriterOptions): Promise<ContentInfo> {
    if (typeof path !== 'string' || !isAbsolute(path)) throw new InvalidArgumentError(`import: the path must be absolute: ${JSON.stringify(path)}`);
    let source: FileHandle;
    try {
      // Non-blocking, so a FIFO cannot hang the open; it is refused below.
      source = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new NotFoundError(`import: ${path} does not exist`, { cause: err });
      throw wrap(err, `import ${path}`);
    }
    try {
      const st = await source.stat();
      if (!st.isFile()) throw new InvalidArgumentError(`import: ${path} is not a regular file`);
      const writer = (await this.writer(options)) as LocalWriter;
      // The opened file, not the path again: what was checked is what is copied.
      return await writer.importFrom(`/proc/self/fd/${source.fd}`, st.size, path);
    } finally {
      await source.close();
    }
  }

  async put(data: Uint8Array, options: WriterOptions): Promise<ContentInfo> {
    if (!(data instanceof Uint8Array)) throw new InvalidArgumentError('put: the data must be bytes');
    if (data.length > maxPutBytes) throw new InvalidArgumentError(`put: ${data.length} bytes is more than ${maxPutBytes}; use an ingest`);
    if (options.expectedSize !== undefined && options.expectedSize !== 0 && options.expectedSize !== data.length) {
      throw new FailedPreconditionError(`put ${options.ref}: size mismatch: got ${data.length} bytes, expected ${options.expectedSize}`);
    }
    const digest = validateDigest(options.expectedDigest);
    for (let attempt = 0; ; attempt++) {
      try {
        let writer = (await this.writer({ ...options, expectedSize: data.length })) as LocalWriter;
        if (writer.offset() !== 0) {
          // Left by an earlier put that broke: the bytes are all here, start over.
          await writer.abort();
          writer = (await this.writer({ ...options, expectedSize: data.length })) as LocalWriter;
        }
        try {
          await writer.write(data);
        } catch (err) {
          await writer.abort().catch(() => undefined);
          throw err;
        }
        return await writer.commit();
      } catch (err) {
        if (isCategory(err, 'unavailable') && attempt < 100) {
          // The same ref is being written by another put: it will be there in a moment.
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        if (!isCategory(err, 'already-exists')) throw err;
      }
      // Already here: leased first, so GC cannot take it between the look and the labels.
      try {
        if (options.leaseId) await this.deps.addLeaseResource(options.leaseId, 'blob', digest);
        const info = await this.info(digest);
        const labels = validateLabels(options.labels);
        return Object.keys(labels).length === 0 ? info : await this.updateLabels(digest, { ...info.labels, ...labels });
      } catch (err) {
        // Collected meanwhile: write it again.
        if (!isCategory(err, 'not-found') || attempt >= 100) throw err;
      }
    }
  }

  /** Called by a writer when it lets go of its ref. */
  release(ref: string): void {
    this.locked.delete(ref);
  }

  async ingestStatus(ref: string): Promise<IngestStatus> {
    validateName('ingest ref', ref);
    const status = await this.readIngest(this.ingestDir(ref));
    if (status === undefined) throw new NotFoundError(`ingest ${ref} not found`);
    return status;
  }

  private async readIngest(dir: string): Promise<IngestStatus | undefined> {
    try {
      const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as IngestMeta;
      const st = await stat(join(dir, 'data'));
      return { ref: meta.ref, offset: st.size, total: meta.total, expectedDigest: meta.expectedDigest, startedAt: new Date(meta.startedAt), updatedAt: st.mtime };
    } catch {
      return undefined;
    }
  }

  async listIngests(): Promise<IngestStatus[]> {
    let names: string[] = [];
    try {
      names = await readdir(join(this.deps.root, 'ingest'));
    } catch {
      return [];
    }
    const out: IngestStatus[] = [];
    for (const name of names) {
      const s = await this.readIngest(join(this.deps.root, 'ingest', name));
      if (s !== undefined) out.push(s);
    }
    return out;
  }

  async abortIngest(ref: string): Promise<void> {
    validateName('ingest ref', ref);
    if (this.locked.has(ref)) throw new UnavailableError(`ingest ${ref} is in progress by another writer`);
    const dir = this.ingestDir(ref);
    try {
      await stat(dir);
    } catch {
      throw new NotFoundError(`ingest ${ref} not found`);
    }
    await rm(dir, { recursive: true, force: true });
  }

  /**
   * Makes disk and database agree after a crash: blob files without a record
   * (a commit cut between rename and insert, or a delete cut halfway) are
   * removed, records without a file or with the wrong size are dropped, and
   * ingest directories missing their metadata or data are removed.
   */
  async reconcile(): Promise<{ removedFiles: number; removedRecords: number; removedIngests: number }> {
    let removedFiles = 0;
    let removedRecords = 0;
    let removedIngests = 0;
    const rows = await this.deps.db.blob.findMany({ select: { digest: true, size: true } });
    const known = new Map(rows.map((r) => [r.digest, Number(r.size)]));
    for (const algorithm of ['sha256', 'sha512']) {
      const dir = join(this.deps.root, 'blobs', algorithm);
      let names: string[] = [];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        const digest = `${algorithm}:${name}`;
        const size = known.get(digest);
        const path = join(dir, name);
        if (size === undefined || (await stat(path)).size !== size) {
          await rm(path, { force: true });
          removedFiles += 1;
        }
      }
    }
    for (const [digest, size] of known) {
      let ok = false;
      try {
        ok = (await stat(this.blobPath(digest))).size === size;
      } catch {
        ok = false;
      }
      if (!ok) {
        await this.deps.db.blob.deleteMany({ where: { digest } });
        await rm(this.blobPath(digest), { force: true });
        removedRecords += 1;
      }
    }
    const ingestRoot = join(this.deps.root, 'ingest');
    let ingests: string[] = [];
    try {
      ingests = await readdir(ingestRoot);
    } catch {
      ingests = [];
    }
    for (const name of ingests) {
      if ((await this.readIngest(join(ingestRoot, name))) === undefined) {
        await rm(join(ingestRoot, name), { recursive: true, force: true });
        removedIngests += 1;
      }
    }
    return { removedFiles, removedRecords, removedIngests };
  }

  async init(): Promise<void> {
    await mkdir(join(this.deps.root, 'blobs', 'sha256'), { recursive: true, mode: 0o700 });
    await mkdir(join(this.deps.root, 'ingest'), { recursive: true, mode: 0o700 });
  }
}

interface WriterState {
  ref: string;
  expectedDigest: string;
  total: number;
  labels: Labels;
  leaseId: string;
  dir: string;
  handle: FileHandle;
  hash: Hash;
  offset: number;
}

/** Bytes read per step when hashing a range a local client wrote. */
const hashChunk = 1024 * 1024;

class LocalWriter implements LocalFileWriter {
  private closed = false;
  private buffers: [Buffer, Buffer] | undefined;

  constructor(
    private readonly store: LocalContentStore,
    private readonly deps: LocalContentDeps,
    private readonly s: WriterState,
  ) {}

  get ref(): string {
    return this.s.ref;
  }

  offset(): number {
    return this.s.offset;
  }

  get dataPath(): string {
    return join(this.s.dir, 'data');
  }

  /**
   * A co-located client wrote the data file up to `offset`: read and hash the
   * new range. Reads run on libuv's thread pool one chunk ahead of the hash,
   * so reading and hashing overlap.
   */
  async advance(offset: number): Promise<void> {
    this.ensureOpen();
    if (offset < this.s.offset) throw new FailedPreconditionError(`ingest ${this.s.ref}: written offset ${offset} is behind the ingest's ${this.s.offset}`);
    if (this.s.total !== 0 && offset > this.s.total) {
      await this.discard();
      throw new FailedPreconditionError(`ingest ${this.s.ref}: more data than the expected ${this.s.total} bytes`);
    }
    this.buffers ??= [Buffer.allocUnsafe(hashChunk), Buffer.allocUnsafe(hashChunk)];
    const [a, b] = this.buffers;
    const read = (buffer: Buffer, at: number): Promise<number> =>
      at >= offset ? Promise.resolve(0) : this.s.handle.read(buffer, 0, Math.min(hashChunk, offset - at), at).then((r) => r.bytesRead);
    try {
      let current = a;
      let next = b;
      let pending = read(current, this.s.offset);
      for (;;) {
        const n = await pending;
        if (n === 0) break;
        const at = this.s.offset + n;
        pending = read(next, at);
        this.s.hash.update(current.subarray(0, n));
        this.s.offset = at;
        [current, next] = [next, current];
      }
    } catch (err) {
      await this.discard();
      throw storeIoError(err, `read ingest ${this.s.ref}`);
    }
    if (this.s.offset !== offset) {
      const got = this.s.offset;
      await this.discard();
      throw new FailedPreconditionError(`ingest ${this.s.ref}: written offset ${offset} is past the data file's end (${got} bytes)`);
    }
  }

  private ensureOpen(): void {
    if (this.closed) throw new FailedPreconditionError(`ingest ${this.s.ref} is closed`);
  }

  /**
   * Replaces the ingest's data with a copy of `source` made in the kernel,
   * then hashes the copy (from the page cache) while it is synced, and
   * commits. The hash covers the store's own file, so what is committed is
   * exactly what was verified.
   */
  async importFrom(source: string, size: number, name: string): Promise<ContentInfo> {
    this.ensureOpen();
    if (this.s.total !== 0 && size !== this.s.total) {
      await this.discard();
      throw new FailedPreconditionError(`import ${name}: size mismatch: the file has ${size} bytes, expected ${this.s.total}`);
    }
    try {
      await copyFile(source, this.dataPath);
      await this.s.handle.chmod(0o644);
    } catch (err) {
      await this.discard();
      throw storeIoError(err, `import ${name}`);
    }
    this.s.hash = createHash(parseDigest(this.s.expectedDigest).algorithm);
    this.s.offset = 0;
    const syncing = this.s.handle.sync();
    try {
      await this.advance(size);
    } finally {
      await syncing.catch(() => undefined);
    }
    return this.commit();
  }

  async write(data: WriteData): Promise<void> {
    this.ensureOpen();
    const length = dataLength(data);
    if (this.s.total !== 0 && this.s.offset + length > this.s.total) {
      await this.discard();
      throw new FailedPreconditionError(`ingest ${this.s.ref}: more data than the expected ${this.s.total} bytes`);
    }
    // The write runs on libuv's thread pool while this thread hashes the same bytes.
    const writing = writeAllAt(this.s.handle, data, this.s.offset);
    for (const piece of data instanceof Uint8Array ? [data] : data) this.s.hash.update(piece);
    try {
      await writing;
    } catch (err) {
      await this.discard();
      throw storeIoError(err, `write ingest ${this.s.ref}`);
    }
    this.s.offset += length;
  }

  async commit(labels?: Labels): Promise<ContentInfo> {
    this.ensureOpen();
    const merged = { ...this.s.labels, ...validateLabels(labels) };
    if (this.s.total !== 0 && this.s.offset !== this.s.total) {
      await this.discard();
      throw new FailedPreconditionError(`ingest ${this.s.ref}: size mismatch: got ${this.s.offset} bytes, expected ${this.s.total}`);
    }
    const actual = `${parseDigest(this.s.expectedDigest).algorithm}:${this.s.hash.digest('hex')}`;
    if (actual !== this.s.expectedDigest) {
      await this.discard();
      throw new FailedPreconditionError(`ingest ${this.s.ref}: digest mismatch: got ${actual}, expected ${this.s.expectedDigest}`);
    }
    try {
      await this.s.handle.sync();
    } catch (err) {
      await this.discard();
      throw storeIoError(err, `sync ingest ${this.s.ref}`);
    }
    await this.s.handle.close();
    this.closed = true;
    try {
      return await this.deps.gcLock.shared(async () => {
        const digest = this.s.expectedDigest;
        if (await blobExists(this.deps.db, digest)) {
          await rm(this.s.dir, { recursive: true, force: true });
          throw new AlreadyExistsError(`content ${digest} already exists`);
        }
        const target = this.store.blobPath(digest);
        await mkdir(join(target, '..'), { recursive: true });
        await rename(join(this.s.dir, 'data'), target);
        const row = await this.deps.db.blob.create({ data: { digest, size: BigInt(this.s.offset), labels: JSON.stringify(merged) } });
        if (this.s.leaseId !== '') await this.deps.addLeaseResource(this.s.leaseId, 'blob', digest);
        await rm(this.s.dir, { recursive: true, force: true });
        return toInfo(row);
      });
    } finally {
      this.store.release(this.s.ref);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.s.handle.close().catch(() => undefined);
    this.store.release(this.s.ref);
  }

  /** Drops the ingest entirely (after a mismatch or a failed write: nothing half-made stays). */
  private async discard(): Promise<void> {
    await this.close();
    await rm(this.s.dir, { recursive: true, force: true });
  }

  async abort(): Promise<void> {
    await this.discard();
  }
}
