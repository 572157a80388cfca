import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { initTelemetry, startHealthServer } from './index.js';

test('health, readiness and metrics endpoints answer on loopback', async () => {
  const telemetry = await initTelemetry({ service: 'test', version: '0.0.0', tracesExporter: 'none' });
  telemetry.meter.createCounter('berth_test_calls_total', { description: 'calls in the test' }).add(3);
  let ready = false;
  const { app, port } = await startHealthServer({
    host: '127.0.0.1',
    port: 0,
    prometheus: telemetry.prometheus,
    readiness: async () => ({ database: ready ? { ok: true } : { ok: false, message: 'migrations pending' } }),
  });
  try {
    const base = `http://127.0.0.1:${port}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const notReady = await fetch(`${base}/readyz`);
    assert.equal(notReady.status, 503);
    assert.deepEqual(await notReady.json(), { status: 'not ready', checks: { database: { ok: false, message: 'migrations pending' } } });
    ready = true;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const metricsText = await (await fetch(`${base}/metrics`)).text();
    assert.match(metricsText, /berth_test_calls_total(\{[^}]*\})? 3/);
  } finally {
    await app.close();
    await telemetry.shutdown();
  }
});
