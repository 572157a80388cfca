import { FailedPreconditionError, InvalidArgumentError } from '@berth/errors';
import type { Database } from '@berth/db';
import { LocalContentStore } from './content-store.js';
import type { storeV1 } from '@berth/proto';
import type { Handlers } from '@berth/rpc';
import {
  contentToWire,
  fromNanos,
  fsUsageToWire,
  imageFromWire,
  imageToWire,
  ingestToWire,
  isLocalFileWriter,
  leaseToWire,
  mountsToWire,
  snapshotToWire,
  usageToWire,
  writerOptionsFromWire,
  type ContentWriter,
  type LeaseResource,
  type Store,
} from '@berth/store-api';

export interface StoreHandlerDeps {
  store: Store;
  db: Database;
  version: string;
  stateDir: string;
}

const empty = {};

function resource(r: storeV1.LeaseResource | undefined): LeaseResource {
  if (r === undefined) throw new InvalidArgumentError('a lease resource is required');
  return { kind: r.kind as LeaseResource['kind'], ref: r.ref };
}

/**
 * The transport adapter of the store's internal API: it only converts wire
 * messages to the Store interface and back (validation happens in the store,
 * so local callers get the same checks).
 */
export function createStoreHandlers(deps: StoreHandlerDeps): Handlers<typeof storeV1.StoreService> {
  const { store } = deps;
  return {
    info: async () => ({
      version: deps.version,
      pid: process.pid,
      databaseDialect: deps.db.dialect,
      appliedMigrations: deps.db.appliedMigrations,
      stateDir: deps.stateDir,
    }),

    getContentInfo: async (r) => contentToWire(await store.content.info(r.digest)),
    listContent: async () => ({ items: (await store.content.list()).map(contentToWire) }),
    updateContentLabels: async (r) => contentToWire(await store.content.updateLabels(r.digest, r.labels)),
    deleteContent: async (r) => (await store.content.delete(r.digest), empty),
    contentPath: async (r) => {
      const info = await store.content.info(r.digest);
      if (!(store.content instanceof LocalContentStore)) throw new FailedPreconditionError('this store has no local files');
      return { path: store.content.blobPath(info.digest), size: BigInt(info.size) };
    },
    readContent: async (r, send) => {
      let offset = Number(r.offset);
      for await (const data of store.content.read(r.digest, { offset, length: Number(r.length) })) {
        await send({ offset: BigInt(offset), data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) });
        offset += data.length;
      }
    },
    ingest: async (requests, send) => {
      let writer: ContentWriter | undefined;
      let committed = false;
      try {
        for await (const message of requests) {
          if (message.open !== undefined) {
            if (writer !== undefined) throw new InvalidArgumentError('ingest: open sent twice');
            const o = message.open;
            writer = await store.content.writer(writerOptionsFromWire(o));
            const localPath = o.local && isLocalFileWriter(writer) ? writer.dataPath : '';
            await send({ offset: BigInt(writer.offset()), localPath });
          } else if (message.write !== undefined) {
            if (writer === undefined) throw new InvalidArgumentError('ingest: write before open');
            if (Number(message.write.offset) !== writer.offset()) {
              throw new FailedPreconditionError(`ingest ${writer.ref}: write at ${message.write.offset}, but the ingest is at ${writer.offset()}`);
            }
            await writer.write(message.write.data);
          } else if (message.written !== undefined) {
            if (writer === undefined) throw new InvalidArgumentError('ingest: written before open');
            if (!isLocalFileWriter(writer)) throw new FailedPreconditionError(`ingest ${writer.ref}: this store does not take local writes`);
            await writer.advance(Number(message.written.offset));
          } else if (message.commit !== undefined) {
            if (writer === undefined) throw new InvalidArgumentError('ingest: commit before open');
            const info = await writer.commit(message.commit.labels);
            committed = true;
            await send({ committed: contentToWire(info), localPath: '' });
            return;
          } else {
            throw new InvalidArgumentError('ingest: empty request');
          }
        }
      } finally {
        // A stream that ends or breaks without a commit keeps its data for a resume.
        if (writer !== undefined && !committed) await writer.close();
      }
    },
    importContent: async (r) => {
      if (r.ingest === undefined) throw new InvalidArgumentError('ImportContent needs the ingest options');
      return contentToWire(await store.content.importFile(r.path, writerOptionsFromWire(r.ingest)));
    },
    putContent: async (r) => {
      if (r.ingest === undefined) throw new InvalidArgumentError('PutContent needs the ingest options');
      return contentToWire(await store.content.put(r.data, writerOptionsFromWire(r.ingest)));
    },
    ingestStatus: async (r) => ingestToWire(await store.content.ingestStatus(r.ref)),
    listIngests: async () => ({ items: (await store.content.listIngests()).map(ingestToWire) }),
    abortIngest: async (r) => (await store.content.abortIngest(r.ref), empty),

    prepare: async (r) => mountsToWire(await store.snapshots.prepare(r.key, r.parent === '' ? undefined : r.parent, { labels: r.labels, ...(r.leaseId === '' ? {} : { leaseId: r.leaseId }) })),
    view: async (r) => mountsToWire(await store.snapshots.view(r.key, r.parent, { labels: r.labels, ...(r.leaseId === '' ? {} : { leaseId: r.leaseId }) })),
    mounts: async (r) => mountsToWire(await store.snapshots.mounts(r.key)),
    commit: async (r) =>
      snapshotToWire(await store.snapshots.commit(r.name, r.key, { labels: r.labels, ...(r.leaseId === '' ? {} : { leaseId: r.leaseId }), ...(r.parent === '' ? {} : { parent: r.parent }) })),
    removeSnapshot: async (r) => (await store.snapshots.remove(r.key), empty),
    statSnapshot: async (r) => snapshotToWire(await store.snapshots.stat(r.key)),
    listSnapshots: async () => ({ items: (await store.snapshots.list()).map(snapshotToWire) }),
    snapshotUsage: async (r) => usageToWire(await store.snapshots.usage(r.key)),

    putImage: async (r) => imageToWire(await store.putImage(imageFromWire(r))),
    getImage: async (r) => imageToWire(await store.getImage(r.ref)),
    listImages: async () => ({ items: (await store.listImages()).map(imageToWire) }),
    removeImageName: async (r) => store.removeImageName(r.ref),
    deleteImage: async (r) => (await store.deleteImage(r.ref), empty),

    createLease: async (r) =>
      leaseToWire(await store.createLease({ ...(r.id === '' ? {} : { id: r.id }), ...(r.expiresAt === 0n ? {} : { expiresAt: fromNanos(r.expiresAt) }), labels: r.labels })),
    deleteLease: async (r) => (await store.deleteLease(r.id), empty),
    listLeases: async () => ({ items: (await store.listLeases()).map(leaseToWire) }),
    addLeaseResource: async (r) => (await store.addLeaseResource(r.leaseId, resource(r.resource)), empty),
    removeLeaseResource: async (r) => (await store.removeLeaseResource(r.leaseId, resource(r.resource)), empty),

    garbageCollect: async () => store.garbageCollect(),
    fsUsage: async () => fsUsageToWire(await store.fsUsage()),
  };
}
