// The streaming server with TLS: https URLs, a client that trusts the
// configured certificate gets through, one that does not is refused.
import { strict as assert } from 'node:assert';
import { readFileSync, rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { portForwardConnection } from '@berth/client';
import { criV1 } from '@berth/proto';
import { makeTestPki, startStack, type StackHandle, type TestPki } from '@berth/testing';

let stack: StackHandle;
let pki: TestPki;
let podId = '';

before(async () => {
  pki = makeTestPki();
  stack = await startStack({ extraConfig: ['[streaming]', `tlsCertFile = "${pki.serverCert}"`, `tlsKeyFile = "${pki.serverKey}"`].join('\n') });
  const config = criV1.PodSandboxConfig.fromPartial({ metadata: { name: 'tls', namespace: 'e2e', uid: 'uid-tls', attempt: 0 }, hostname: 'tls', linux: {} });
  podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
});
after(async () => {
  if (podId) await stack?.cri.runtime.removePodSandbox({ podSandboxId: podId }).catch(() => undefined);
  await stack?.stop();
  rmSync(pki.dir, { recursive: true, force: true });
});

const failure = (conn: ReturnType<typeof portForwardConnection>) => new Promise<Error>((resolve) => conn.on('error', resolve));

test('URLs are https; a client trusting the CA reaches the pod, one that does not is refused', async () => {
  const { url } = await stack.cri.runtime.portForward({ podSandboxId: podId, port: [] });
  assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/portforward\//);
  // Nothing listens on port 9 in the pod: getting the pod's refusal back means TLS, the upgrade and the token all worked.
  const trusted = await failure(portForwardConnection(url, 9, { tls: { ca: readFileSync(pki.ca) } }));
  assert.match(trusted.message, /refused/i);
  const untrusted = await failure(portForwardConnection((await stack.cri.runtime.portForward({ podSandboxId: podId, port: [] })).url, 9));
  assert.match(untrusted.message, /self[- ]signed|certificate/i);
});
