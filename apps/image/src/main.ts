// Composition root of berth-image: pulls and unpacks images. Stateless, so
// any number of replicas share the work through the NATS queue group.
import { hostname } from 'node:os';
import { imageQueueGroup, subjects } from '@berth/bus';
import { join } from 'node:path';
import { builtinSandboxImage, internalSocket } from '@berth/config';
import { runDaemon } from '@berth/daemon';
import { formatReference, parseReference } from '@berth/registry';
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
      onProgress: (event) => ctx.bus.publish(subjects.pullProgress, event),
      maxUncompressedLayerBytes: c.maxLayerBytes,
    });
    const info = ctx.bus.serve(subjects.imageInfo, async () => ({ version: ctx.version, pid: process.pid, replica }), { queue: imageQueueGroup });
    // While a pull runs, a heartbeat each second tells the CRI frontend this
    // replica is alive; if it dies, the frontend sees the silence and retries.
    const pull = ctx.bus.serve(
      subjects.imagePull,
      async (request) => {
        const image = formatReference(parseReference(request.image));
        const beat = setInterval(() => ctx.bus.publish(subjects.pullProgress, { image, layer: '', phase: 'working', bytes: 0, total: 0 }), 1000);
        try {
          return await puller.pull(request.image, request.auth === undefined ? {} : { auth: request.auth });
        } finally {
          clearInterval(beat);
        }
      },
      { queue: imageQueueGroup },
    );
    ctx.onShutdown(() => {
      info.unsubscribe();
      pull.unsubscribe();
    });
    await ctx.bus.connection.flush();

    // The built-in sandbox image comes from the OCI layout built at set-up,
    // so a node needs no registry to run pods. Retried until the store answers.
    let sandbox: { ok: boolean; message?: string } = { ok: true };
    if (ctx.config.sandboxImage === '') {
      const name = builtinSandboxImage(ctx.version);
      const layout = join(import.meta.dirname, '../../pause/dist/oci');
      sandbox = { ok: false, message: `importing ${name}` };
      const importSandbox = async (attempt: number): Promise<void> => {
        try {
          const r = await puller.importLayout(layout, name);
          sandbox = { ok: true };
          ctx.logger.info({ image: name, id: r.imageId }, 'built-in sandbox image ready');
        } catch (err) {
          sandbox = { ok: false, message: `import ${name}: ${(err as Error).message}` };
          if (attempt === 0 || attempt % 30 === 0) ctx.logger.warn({ err: (err as Error).message }, 'built-in sandbox image not imported yet; retrying');
          setTimeout(() => void importSandbox(attempt + 1), 1000).unref();
        }
      };
      void importSandbox(0);
    }
    return async () => ({ sandboxImage: sandbox });
  },
});
