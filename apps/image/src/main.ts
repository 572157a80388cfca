// Composition root of berth-image: pulls and unpacks images. Stateless, so
// any number of replicas share the work through the NATS queue group.
import { hostname } from 'node:os';
import { imageQueueGroup, subjects } from '@berth/bus';
import { internalSocket } from '@berth/config';
import { runDaemon } from '@berth/daemon';
import { RemoteStore } from '@berth/store-api';
import { Puller } from './puller.js';

await runDaemon({
  service: 'image',
  async start(ctx) {
    const replica = `${hostname()}-${process.pid}`;
    const store = new RemoteStore(`unix://${internalSocket(ctx.config, 'store')}`, { timeoutMs: 30 * 60 * 1000 });
    ctx.onShutdown(() => store.close());
    const c = ctx.config.image;
    const puller = new Puller({
      store,
      logger: ctx.logger,
      concurrency: c.concurrency,
      progressTimeoutMs: c.progressTimeoutSeconds * 1000,
      insecureHosts: c.insecureRegistries,
      hostsDir: c.hostsDir,
      maxUncompressedLayerBytes: c.maxLayerBytes,
    });
    const info = ctx.bus.serve(subjects.imageInfo, async () => ({ version: ctx.version, pid: process.pid, replica }), { queue: imageQueueGroup });
    const pull = ctx.bus.serve(subjects.imagePull, (request) => puller.pull(request.image, request.auth === undefined ? {} : { auth: request.auth }), { queue: imageQueueGroup });
    ctx.onShutdown(() => {
      info.unsubscribe();
      pull.unsubscribe();
    });
    await ctx.bus.connection.flush();
    return async () => ({});
  },
});
