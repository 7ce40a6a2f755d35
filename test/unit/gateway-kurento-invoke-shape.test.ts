import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KURENTO_CLIENT_INVOKE, isUnknownOperation } from '../../src/gateway/kurento/ferry-media-dtmf';

/**
 * src/gateway/kurento/ferry-media-dtmf.ts calls ferry media's `sendDtmf` extension through
 * kurento-client's internal `MediaObject.prototype._invoke(transaction, operation, params, callback)`.
 * This pins that private member on the installed kurento-client: when an upgrade changes it, this
 * fails here instead of DTMF silently falling back in production.
 */

// kurento-client must be loaded before kurento-client-core (the packages require each other).
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('kurento-client');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const core = require('kurento-client-core') as { abstracts: { MediaObject: { prototype: Record<string, unknown> } } };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const elements = require('kurento-client-elements') as Record<string, { prototype: Record<string, unknown> }>;

describe('kurento-client internal invoke (ferry extensions)', { timeout: 10_000 }, () => {
  test('MediaObject.prototype._invoke exists with (transaction, method, params, callback) and emits an invoke request', () => {
    const invoke = core.abstracts.MediaObject.prototype[KURENTO_CLIENT_INVOKE];
    assert.equal(typeof invoke, 'function');
    const fn = invoke as (...a: unknown[]) => unknown;
    assert.equal(fn.length, 4);
    const src = fn.toString();
    assert.match(src, /^function\s*\(\s*transaction\s*,\s*method\s*,\s*params\s*,\s*callback\s*\)/);
    assert.match(src, /operation:\s*method/);
    assert.match(src, /operationParams\s*=\s*params/);
    assert.match(src, /emit\('_rpc',\s*transaction,\s*'invoke'/);
    assert.match(src, /promiseCallback\(promise,\s*callback/, 'the callback gets the error (no unhandled rejection)');
  });

  test('RtpEndpoint and WebRtcEndpoint inherit it and have no generated sendDtmf', () => {
    for (const type of ['RtpEndpoint', 'WebRtcEndpoint']) {
      const proto = elements[type]!.prototype;
      assert.equal(proto[KURENTO_CLIENT_INVOKE], core.abstracts.MediaObject.prototype[KURENTO_CLIENT_INVOKE], type);
      assert.equal(proto.sendDtmf, undefined, `${type}: a generated sendDtmf would make the internal call unnecessary`);
    }
  });

  test('an unknown-operation refusal is told apart from other errors', () => {
    const refusal = Object.assign(new Error("Method 'sendDtmf' with 2 parameters not found"), { code: 40008 });
    assert.equal(isUnknownOperation(refusal, 'sendDtmf'), true);
    assert.equal(isUnknownOperation(Object.assign(new Error("Method 'other' with 0 parameters not found"), { code: 40008 }), 'sendDtmf'), false);
    assert.equal(isUnknownOperation(Object.assign(new Error("sendDtmf: the peer did not negotiate telephone-event/8000"), { code: 40005 }), 'sendDtmf'), false);
    assert.equal(isUnknownOperation(undefined, 'sendDtmf'), false);
  });
});
