import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { FakeClock } from '../../src/common/clock';
import { ApiError } from '../../src/gateway/api/api-error';
import { CallControl } from '../../src/gateway/api/call-control';
import type { Call } from '../../src/gateway/calls/call';

/**
 * How `/dtmf` chooses its method (src/gateway/api/call-control.ts), for the answers a media server can
 * give: ferry media queues the events (rfc4733, no INFO); a media server without the extension (a real
 * KMS: 40008 "Method 'sendDtmf' … not found") gets SIP INFO, one per digit; a party without
 * telephone-event (40005) is a 409 and nothing is sent. The endpoint and the dialog are stand-ins that
 * record what they were asked: the RTP path itself is tested end to end in
 * test/e2e/gateway-api-call-control.test.ts and test/integration/media-dtmf-send.test.ts; no KMS runs here.
 */

function endpoint(answer: (params: Record<string, unknown>) => { err?: Record<string, unknown>; value?: unknown }) {
  const calls: { operation: string; params: Record<string, unknown> }[] = [];
  const ep = Object.assign(new EventEmitter(), {
    id: 'p/ep_kurento.RtpEndpoint',
    _invoke(_tx: unknown, operation: string, params: Record<string, unknown>, cb: (err: unknown, value: unknown) => void) {
      calls.push({ operation, params });
      const a = answer(params);
      queueMicrotask(() => (a.err ? cb(Object.assign(new Error(String(a.err.message)), a.err), undefined) : cb(null, a.value)));
    },
  });
  return { ep, calls };
}

function fakeCall(ep: unknown) {
  const infos: string[] = [];
  const notes: string[] = [];
  const dialog = { connected: true, request: async (r: { body?: string }) => (infos.push(r.body ?? ''), { status: 200 }) };
  const call = {
    state: 'answered',
    isEnding: false,
    media: { callee: ep, caller: ep },
    dialog: () => dialog,
    note: (e: string, d?: string) => notes.push(`${e}: ${d ?? ''}`),
    persist: async () => undefined,
    record: { id: 'c1' },
  } as unknown as Call;
  return { call, infos, notes };
}

const control = () =>
  new CallControl({ registry: {} as never, store: {} as never, clock: new FakeClock(), instanceId: 'gw', transfers: () => undefined });

describe('/dtmf method choice', { timeout: 10_000 }, () => {
  test('ferry media: RFC 4733 through sendDtmf, no INFO', async () => {
    const { ep, calls } = endpoint(() => ({ value: 370 }));
    const { call, infos, notes } = fakeCall(ep);
    const r = await control().dtmf(call, { party: 'callee', digits: '12', durationMs: 160 });
    assert.deepEqual(r, { sent: 2, method: 'rfc4733', untilMs: 370 });
    assert.deepEqual(calls, [{ operation: 'sendDtmf', params: { tones: '12', durationMs: 160 } }]);
    assert.equal(infos.length, 0);
    assert.match(notes.join(), /RFC 4733/);
  });

  test('a media server without the extension (KMS): SIP INFO per digit', async () => {
    const { ep, calls } = endpoint(() => ({ err: { code: 40008, message: "Method 'sendDtmf' with 2 parameters not found" } }));
    const { call, infos } = fakeCall(ep);
    const r = await control().dtmf(call, { party: 'callee', digits: '5#', durationMs: 100 });
    assert.deepEqual(r, { sent: 2, method: 'sip-info' });
    assert.equal(calls.length, 1);
    assert.deepEqual(infos, ['Signal=5\r\nDuration=100\r\n', 'Signal=#\r\nDuration=100\r\n']);
  });

  test('a party without telephone-event: 409, nothing sent; another media error: 502, no INFO', async () => {
    const { ep } = endpoint(() => ({ err: { code: 40005, message: 'sendDtmf: the peer did not negotiate telephone-event/8000 (RFC 4733) in its SDP' } }));
    const { call, infos } = fakeCall(ep);
    await assert.rejects(control().dtmf(call, { party: 'callee', digits: '1', durationMs: 100 }), (e: ApiError) => e.status === 409 && /telephone-event/.test(e.message));
    assert.equal(infos.length, 0);
    const other = endpoint(() => ({ err: { code: 40108, message: "sendDtmf: the endpoint's media leg ended (rtcp-bye)" } }));
    const c2 = fakeCall(other.ep);
    await assert.rejects(control().dtmf(c2.call, { party: 'caller', digits: '1', durationMs: 100 }), (e: ApiError) => e.status === 502 && /leg ended/.test(e.message));
    assert.equal(c2.infos.length, 0);
  });
});
