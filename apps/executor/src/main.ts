// Composition root of berth-executor: the service that owns pods and
// containers (runc, conmon, CNI). Everything is wired here.
import { internalSocket } from '@berth/config';
import { runDaemon, serveGrpc } from '@berth/daemon';
import { executorV1 } from '@berth/proto';
import { buildService } from '@berth/rpc';
import { detectCgroupVersion, resolveCgroupDriver } from './cgroups.js';
import { checkCniConfig } from './cni-config.js';
import { probeOciRuntime } from './runtime-info.js';

await runDaemon({
  service: 'executor',
  async start(ctx) {
    const cgroupDriver = resolveCgroupDriver(ctx.config.cgroupDriver);
    const cgroupVersion = detectCgroupVersion();
    const runtime = await probeOciRuntime(ctx.config.runtimePath);
    if (!runtime.ready) ctx.logger.warn({ runtime }, 'OCI runtime not usable');
    ctx.logger.info({ cgroupDriver, cgroupVersion, runtime: runtime.version }, 'node facts');
    const network = () => checkCniConfig(ctx.config.cni.confDir, ctx.config.cni.binDirs);
    const handlers = {
      info: async () => ({
        version: ctx.version,
        pid: process.pid,
        cgroupDriver,
        cgroupVersion,
        runtime,
        network: await network(),
      }),
    };
    await serveGrpc(ctx, internalSocket(ctx.config, 'executor'), [buildService(executorV1.ExecutorService, handlers, { logger: ctx.logger, service: 'executor' })]);
    return async () => ({ runtime: runtime.ready ? { ok: true } : { ok: false, message: runtime.message } });
  },
});
