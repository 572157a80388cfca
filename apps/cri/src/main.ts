// Composition root of berth-cri: the CRI frontend, Berth's only public door.
// It serves runtime.v1 on the CRI socket and calls the internal services.
import { runDaemon, serveGrpc } from '@berth/daemon';
import { connectBackends } from './backends.js';
import { createCriServices } from './cri-service.js';
import { RuntimeView } from './runtime-view.js';

await runDaemon({
  service: 'cri',
  async start(ctx) {
    const backends = connectBackends(ctx.config, ctx.bus);
    ctx.onShutdown(() => backends.close());
    const view = new RuntimeView(backends);
    ctx.onShutdown(() => view.close());
    const services = createCriServices({ backends, view, config: ctx.config, logger: ctx.logger, version: ctx.version });
    await serveGrpc(ctx, ctx.config.socket, services, { mode: 0o660, gid: ctx.config.socketGid, acceptPathAuthority: true });
    return async () => ({});
  },
});
