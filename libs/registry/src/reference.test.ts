import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { isCategory } from '@berth/errors';
import { formatReference, parseReference } from './index.js';

const d = 'sha256:' + 'a'.repeat(64);

test('references normalise as docker and the kubelet expect', () => {
  const cases: Array<[string, string]> = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest'],
    ['someone/app', 'docker.io/someone/app:latest'],
    ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10'],
    ['localhost/app', 'localhost/app:latest'],
    ['127.0.0.1:5000/test/busybox:v1', '127.0.0.1:5000/test/busybox:v1'],
    [`busybox@${d}`, `docker.io/library/busybox@${d}`],
    [`gcr.io/a/b:tag@${d}`, `gcr.io/a/b:tag@${d}`],
  ];
  for (const [input, expected] of cases) assert.equal(formatReference(parseReference(input)), expected, input);
});

test('bad references are invalid arguments', () => {
  for (const bad of ['', 'busybox/Upper', 'busybox@sha256:123', 'a//b', 'busybox:', 'busybox:-bad', 'reg.io/../etc', 'bad host:5000/x', 'x'.repeat(5000)]) {
    assert.throws(() => parseReference(bad), (e: Error) => isCategory(e, 'invalid-argument'), bad);
  }
});
