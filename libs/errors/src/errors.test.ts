import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import {
  BerthError,
  GrpcCode,
  InvalidArgumentError,
  NotFoundError,
  categoryOf,
  fromGrpcStatus,
  isCategory,
  toGrpcStatus,
  wrap,
} from './index.js';

test('categories map to gRPC codes and back', () => {
  const status = toGrpcStatus(new NotFoundError('image "busybox" not found'));
  assert.deepEqual(status, { code: GrpcCode.NOT_FOUND, details: 'image "busybox" not found' });
  const back = fromGrpcStatus(status, 'image status');
  assert.ok(back instanceof BerthError);
  assert.equal(back.category, 'not-found');
  assert.equal(back.message, 'image status: image "busybox" not found');
});

test('an uncategorised error is internal and its message does not leak', () => {
  const status = toGrpcStatus(new Error('ENOENT: /var/lib/berth/secret'));
  assert.equal(status.code, GrpcCode.INTERNAL);
  assert.doesNotMatch(status.details, /secret/);
  assert.equal(categoryOf('a string'), 'internal');
});

test('wrap keeps the category and the cause', () => {
  const original = new InvalidArgumentError('digest has no algorithm');
  const wrapped = wrap(original, 'pull busybox');
  assert.equal(wrapped.message, 'pull busybox: digest has no algorithm');
  assert.ok(isCategory(wrapped, 'invalid-argument'));
  assert.equal(wrapped.cause, original);
  assert.equal(original.name, 'InvalidArgumentError');
});

test('codes outside the category set fold into the nearest category', () => {
  assert.equal(fromGrpcStatus({ code: GrpcCode.UNAUTHENTICATED, details: 'x' }).category, 'permission-denied');
  assert.equal(fromGrpcStatus({ code: GrpcCode.UNKNOWN, details: 'x' }).category, 'internal');
});
