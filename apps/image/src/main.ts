// Composition root of berth-image: pulls and unpacks images. Stateless, so
// any number of replicas share the work through the NATS queue group.
import { hostname } from 'node:os';
import { imageQueueGroup, subjects } from '@berth/bus';
import { runDaemon } from '@berth/daemon';

await runDaemon({
  service: 'image',
  async start(ctx) {
    const replica = `${hostname()}-${process.pid}`;
    const info = ctx.bus.serve(subjects.imageInfo, async () => ({ version: ctx.version, pid: process.pid, replica }), { queue: imageQueueGroup });
    ctx.onShutdown(() => info.unsubscribe());
    await ctx.bus.connection.flush();
    return async () => ({});
  },
});
