import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { Call } from '../../src/gateway/calls/call';
import type { DialogLike, InDialogRequest } from '../../src/gateway/calls/dialog-like';
import type { CallRecord } from '../../src/gateway/state/call-record';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { pollPause } from '../helpers/wait-for';

/**
 * Re-offers inside a call (re-INVITE, UPDATE) pass the same SDP checks as a new call: a hostile one
 * gets 488 with a Warning, the other party is not re-INVITEd and the record keeps the old SDP.
 * The dialogs are stand-ins with the shape srf's Dialog has; the Call is the real one.
 */
const sdp = (c: string, dir = 'sendrecv', port = 40000): string =>
  ['v=0', `o=- 1 1 IN IP4 ${c}`, 's=-', `c=IN IP4 ${c}`, 't=0 0', `m=audio ${port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', `a=${dir}`, ''].join('\r\n');

class StandInDialog extends EventEmitter implements DialogLike {
  readonly id = Math.random().toString(36).slice(2);
  readonly connected = true;
  readonly modified: string[] = [];
  sip = { callId: 'c', localTag: 'l', remoteTag: 'r' };
  constructor(public local: { sdp: string }, public remote: { sdp: string }) {
    super();
  }
  async destroy(): Promise<unknown> {
    return undefined;
  }
  async modify(offer: string): Promise<string> {
    this.modified.push(offer);
    return this.remote.sdp;
  }
  async request(): Promise<{ status: number }> {
    return { status: 200 };
  }
}

interface Sent {
  status: number;
  headers: Record<string, string>;
}

function request(method: string, body: string, source?: string): { req: InDialogRequest; answered: Promise<Sent> } {
  let done!: (s: Sent) => void;
  const answered = new Promise<Sent>((r) => (done = r));
  const req: InDialogRequest = { method, body, ...(source ? { source_address: source } : {}), get: () => undefined, has: () => false };
  const res = {
    send(status: number, a?: string | { headers?: Record<string, string> }, b?: { headers?: Record<string, string> }) {
      const opts = typeof a === 'object' ? a : b;
      done({ status, headers: opts?.headers ?? {} });
    },
  };
  return { req: Object.assign(req, { __res: res }), answered };
}

/** `legs`: the legs' SIP sources as recorded at set-up (absent: a record written before they were kept), the callee's earlier SDP */
function call(callerSdp: string, legs: { callerSource?: string; calleeSource?: string; calleeSdp?: string } = {}): { call: Call; caller: StandInDialog; callee: StandInDialog; record: CallRecord } {
  const record: CallRecord = {
    id: 'call-1', state: 'answered', createdAt: Date.now(),
    caller: { uri: 'sip:a@d', kind: 'rtp', party: 'a', remoteSdp: callerSdp, ...(legs.callerSource ? { sipSource: legs.callerSource } : {}) },
    callee: { uri: 'sip:b@d', kind: 'rtp', party: 'b', ...(legs.calleeSource ? { sipSource: legs.calleeSource } : {}) },
    media: { mediaUrl: 'ws://x' }, owner: 'gw', timeline: [],
  };
  const c = new Call(record, { store: new MemoryStateStore(), clock: systemClock, log: createLogger('test.call'), endedRecordTtlMs: 60_000, loopbackMedia: 'from-loopback' });
  const caller = new StandInDialog({ sdp: sdp('192.0.2.1') }, { sdp: callerSdp });
  const callee = new StandInDialog({ sdp: sdp('192.0.2.1') }, { sdp: legs.calleeSdp ?? sdp('198.51.100.20') });
  c.connect(caller, callee, { adopted: true });
  return { call: c, caller, callee, record };
}

/** polls `cond` every 5 ms until it holds or `ms` passed */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await pollPause(5);
  }
}

const emit = (d: StandInDialog, event: 'modify' | 'update', r: ReturnType<typeof request>): void => {
  d.emit(event, r.req, (r.req as unknown as { __res: unknown }).__res);
};

describe('re-offers in a call pass the SDP checks', () => {
  test('positive control: a valid hold re-INVITE is answered 200 and carried to the other party', { timeout: 30_000 }, async () => {
    const { caller, callee } = call(sdp('198.51.100.10'));
    const r = request('INVITE', sdp('198.51.100.10', 'sendonly'), '198.51.100.10');
    emit(caller, 'modify', r);
    assert.equal((await r.answered).status, 200);
    await new Promise((res) => setImmediate(res));
    assert.equal(callee.modified.length, 1, 'the hold went across');
  });

  test('a re-INVITE aiming media at our loopback (c=127.0.0.1, port 6379) from a remote party: 488 + Warning, nothing changes', { timeout: 30_000 }, async () => {
    const { caller, callee, record } = call(sdp('198.51.100.10'));
    const before = record.caller.remoteSdp;
    const r = request('INVITE', sdp('127.0.0.1', 'sendrecv', 6379), '198.51.100.10');
    emit(caller, 'modify', r);
    const sent = await r.answered;
    assert.equal(sent.status, 488);
    assert.match(sent.headers.Warning ?? '', /^399 ferry ".*loopback.*"$/);
    assert.equal(callee.modified.length, 0, 'the other party was not re-INVITEd');
    assert.equal(record.caller.remoteSdp, before, 'the record keeps the old SDP');
    assert.ok(record.timeline.some((e) => e.event === 'sdp-refused'));
  });

  test('an UPDATE with a multicast or oversized SDP: 488', { timeout: 30_000 }, async () => {
    const { caller } = call(sdp('198.51.100.10'));
    const a = request('UPDATE', sdp('239.1.1.1'), '198.51.100.10');
    emit(caller, 'update', a);
    assert.equal((await a.answered).status, 488);
    const b = request('UPDATE', sdp('198.51.100.10') + `a=x:${'y'.repeat(20_000)}\r\n`, '198.51.100.10');
    emit(caller, 'update', b);
    assert.equal((await b.answered).status, 488);
    const ok = request('UPDATE', sdp('198.51.100.10'), '198.51.100.10');
    emit(caller, 'update', ok);
    assert.equal((await ok.answered).status, 200, 'positive control');
  });

  test('the other party\'s answer to our re-INVITE is checked too: a multicast answer is noted and not applied', { timeout: 30_000 }, async () => {
    const { caller, callee, record } = call(sdp('198.51.100.10'));
    const before = record.callee.remoteSdp;
    callee.remote.sdp = sdp('239.9.9.9', 'recvonly');
    const r = request('INVITE', sdp('198.51.100.10', 'sendonly'), '198.51.100.10');
    emit(caller, 'modify', r);
    assert.equal((await r.answered).status, 200, 'the hold itself is fine');
    await until(() => record.timeline.some((e) => e.event === 'sdp-refused'), 2_000, "the callee's answer judged");
    assert.equal(callee.modified.length, 1, 'the callee was re-INVITEd');
    assert.equal(record.callee.remoteSdp, before, 'its answer was not taken');
    assert.ok(record.timeline.some((e) => e.event === 'sdp-refused' && e.detail === 'callee answer: multicast'), JSON.stringify(record.timeline));
  });

  test('a party already on loopback may stay there when the request carries no source (an adopted dialog)', { timeout: 30_000 }, async () => {
    const { caller } = call(sdp('127.0.0.1'));
    const r = request('INVITE', sdp('127.0.0.1', 'sendonly'));
    emit(caller, 'modify', r);
    assert.equal((await r.answered).status, 200);
    const { caller: remoteCaller } = call(sdp('198.51.100.10'));
    const bad = request('INVITE', sdp('127.0.0.1', 'sendonly'));
    emit(remoteCaller, 'modify', bad);
    assert.equal((await bad.answered).status, 488, 'a remote party cannot move to our loopback');
  });

  test('a leg is judged by its own SIP source: a webphone on this host (SIP from 127.0.0.1) answering our hold re-INVITE with c=127.0.0.1 is accepted, whatever its earlier SDP said', { timeout: 30_000 }, async () => {
    // the webphone's first answer named no loopback address (0.0.0.0 / a LAN address), its SIP comes from loopback
    for (const earlier of ['0.0.0.0', '192.168.1.20']) {
      const { caller, callee, record } = call(sdp('127.0.0.1'), { callerSource: '127.0.0.1', calleeSource: '127.0.0.1', calleeSdp: sdp(earlier) });
      callee.remote.sdp = sdp('127.0.0.1', 'recvonly', 41000);
      const r = request('INVITE', sdp('127.0.0.1', 'sendonly'), '127.0.0.1');
      emit(caller, 'modify', r);
      assert.equal((await r.answered).status, 200);
      await until(() => record.callee.direction !== undefined || record.timeline.some((e) => e.event === 'sdp-refused'), 2000, 'the callee answer handled');
      assert.equal(record.callee.direction, 'recvonly', `the answer was taken (earlier c=${earlier}): ${JSON.stringify(record.timeline)}`);
      assert.equal(record.callee.remoteSdp, callee.remote.sdp);
      assert.ok(!record.timeline.some((e) => e.event === 'sdp-refused'));
    }
  });

  test('a leg whose SIP comes from a remote address cannot aim media at our loopback: re-offer 488, answer to our re-INVITE not taken (also when the request itself names no source)', { timeout: 30_000 }, async () => {
    const { caller, callee, record } = call(sdp('198.51.100.10'), { callerSource: '198.51.100.10', calleeSource: '203.0.113.7', calleeSdp: sdp('127.0.0.1') });
    const before = record.callee.remoteSdp;
    callee.remote.sdp = sdp('127.0.0.1', 'recvonly', 6379);
    const r = request('INVITE', sdp('198.51.100.10', 'sendonly'), '198.51.100.10');
    emit(caller, 'modify', r);
    assert.equal((await r.answered).status, 200, 'positive control: the hold itself is fine');
    await until(() => record.timeline.some((e) => e.event === 'sdp-refused'), 2000, 'the callee answer refused');
    assert.ok(record.timeline.some((e) => e.event === 'sdp-refused' && e.detail === 'callee answer: loopback'), JSON.stringify(record.timeline));
    assert.equal(record.callee.remoteSdp, before, 'its answer was not taken');
    assert.equal(record.callee.direction, undefined);
    const offer = request('INVITE', sdp('127.0.0.1', 'sendonly'));
    emit(caller, 'modify', offer);
    assert.equal((await offer.answered).status, 488, 'a remote leg re-offering our loopback (no source on the request)');
  });
});
