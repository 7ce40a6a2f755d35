import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import type { Flow } from '../../src/sip/transport/flow';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import type { SipRequest, SipResponse } from '../../src/sip/message/sip-message';
import { ClientInviteTransaction, ICT_TRANSITIONS } from '../../src/sip/transaction/client-invite-transaction';
import { ClientNonInviteTransaction } from '../../src/sip/transaction/client-non-invite-transaction';
import { ServerInviteTransaction, IST_TRANSITIONS } from '../../src/sip/transaction/server-invite-transaction';
import { ServerNonInviteTransaction } from '../../src/sip/transaction/server-non-invite-transaction';
import { DEFAULT_TIMERS } from '../../src/sip/transaction/timer-config';
import { makeResponse } from '../../src/sip/engine/message-builders';

/** In-memory flow that records what was sent and when (fake clock time). */
class RecordingFlow implements Flow {
  readonly id = 'mem';
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 5070;
  readonly localAddress = '127.0.0.1';
  readonly localPort = 5060;
  readonly closed = false;
  readonly sent: Array<{ at: number; text: string }> = [];
  constructor(private readonly clock: FakeClock, readonly reliable: boolean, readonly protocol: 'udp' | 'tcp' = reliable ? 'tcp' : 'udp') {}
  send(data: Buffer): void {
    this.sent.push({ at: this.clock.now(), text: data.toString('utf8') });
  }
  times(prefix: string): number[] {
    const t0 = this.startedAt;
    return this.sent.filter((s) => s.text.startsWith(prefix)).map((s) => s.at - t0);
  }
  startedAt = 0;
}

function request(method: string): SipRequest {
  const m = parseSipMessage(Buffer.from([
    `${method} sip:bob@127.0.0.1 SIP/2.0`, 'Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKt1', 'From: <sip:a@127.0.0.1>;tag=a',
    'To: <sip:bob@127.0.0.1>', 'Call-ID: c1', `CSeq: 1 ${method}`, 'Content-Length: 0', '', ''].join('\r\n')));
  return m as SipRequest;
}

function response(req: SipRequest, status: number): SipResponse {
  return makeResponse(req, status, status > 100 ? 'totag' : undefined);
}

function setup(reliable = false) {
  const clock = new FakeClock();
  const flow = new RecordingFlow(clock, reliable);
  flow.startedAt = clock.now();
  let terminated = 0;
  const got: number[] = [];
  let timeouts = 0;
  const user = { onResponse: (r: SipResponse) => got.push(r.status), onTimeout: () => { timeouts++; } };
  return { clock, flow, user, got, onTerminated: () => { terminated++; }, terminatedCount: () => terminated, timeouts: () => timeouts };
}

const { t1, t2, t4 } = DEFAULT_TIMERS;

describe('INVITE client transaction (RFC 3261 §17.1.1, RFC 6026)', () => {
  test('Timer A retransmits at T1, 2T1, 4T1...; Timer B gives up at 64*T1 with a timeout', { timeout: 30_000 }, () => {
    const s = setup();
    const ict = new ClientInviteTransaction(request('INVITE'), s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated, s.user);
    ict.start();
    s.clock.advance(64 * t1 + 1);
    assert.deepEqual(s.flow.times('INVITE'), [0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert.equal(s.timeouts(), 1);
    assert.equal(ict.currentState, 'terminated');
    assert.equal(s.terminatedCount(), 1);
    assert.equal(s.clock.pending(), 0, 'no timer outlives the transaction');
  });

  test('a provisional stops Timer A (and B); no retransmissions in Proceeding', { timeout: 30_000 }, () => {
    const s = setup();
    const req = request('INVITE');
    const ict = new ClientInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated, s.user);
    ict.start();
    s.clock.advance(600);
    ict.receiveResponse(response(req, 180));
    s.clock.advance(100_000);
    assert.deepEqual(s.flow.times('INVITE'), [0, 500]);
    assert.equal(ict.currentState, 'proceeding');
    assert.deepEqual(s.got, [180]);
    assert.equal(s.timeouts(), 0);
  });

  test('3xx-6xx: ACK sent by the transaction, retransmitted final re-ACKed and absorbed, Timer D then terminated', { timeout: 30_000 }, () => {
    const s = setup();
    const req = request('INVITE');
    const ict = new ClientInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated, s.user);
    ict.start();
    ict.receiveResponse(response(req, 486));
    ict.receiveResponse(response(req, 486));
    assert.deepEqual(s.got, [486], 'the TU sees the final once');
    assert.equal(s.flow.times('ACK').length, 2);
    assert.match(s.flow.sent.find((x) => x.text.startsWith('ACK'))!.text, /CSeq: 1 ACK/);
    assert.equal(ict.currentState, 'completed');
    s.clock.advance(31_999);
    assert.equal(ict.currentState, 'completed');
    s.clock.advance(2);
    assert.equal(ict.currentState, 'terminated');
  });

  test('Timer D is 0 on a reliable transport', { timeout: 30_000 }, () => {
    const s = setup(true);
    const req = request('INVITE');
    const ict = new ClientInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated, s.user);
    ict.start();
    ict.receiveResponse(response(req, 503));
    s.clock.advance(0);
    assert.equal(ict.currentState, 'terminated');
    assert.deepEqual(s.flow.times('INVITE'), [0], 'no Timer A on a reliable transport');
  });

  test('2xx: Accepted (RFC 6026), 2xx retransmissions reach the TU, Timer M ends it', { timeout: 30_000 }, () => {
    const s = setup();
    const req = request('INVITE');
    const ict = new ClientInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated, s.user);
    ict.start();
    ict.receiveResponse(response(req, 200));
    ict.receiveResponse(response(req, 200));
    assert.deepEqual(s.got, [200, 200]);
    assert.equal(s.flow.times('ACK').length, 0, 'ACK for 2xx is the TU\'s job');
    s.clock.advance(64 * t1);
    assert.equal(ict.currentState, 'terminated');
  });

  test('the transition table refuses illegal moves', { timeout: 30_000 }, () => {
    assert.deepEqual(ICT_TRANSITIONS.completed, ['terminated']);
    assert.ok(!ICT_TRANSITIONS.accepted.includes('completed'));
    assert.deepEqual(IST_TRANSITIONS.terminated, []);
  });
});

describe('non-INVITE client transaction (RFC 3261 §17.1.2)', () => {
  test('Timer E doubles up to T2; Timer F times out at 64*T1', { timeout: 30_000 }, () => {
    const s = setup();
    const nict = new ClientNonInviteTransaction(request('OPTIONS'), s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated, s.user);
    nict.start();
    s.clock.advance(64 * t1 + 1);
    assert.deepEqual(s.flow.times('OPTIONS'), [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    assert.equal(s.timeouts(), 1);
    assert.equal(s.clock.pending(), 0);
  });

  test('in Proceeding Timer E runs at T2 and Timer F keeps its original deadline', { timeout: 30_000 }, () => {
    const s = setup();
    const req = request('BYE');
    const nict = new ClientNonInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated, s.user);
    nict.start();
    s.clock.advance(600);
    nict.receiveResponse(response(req, 100));
    s.clock.advance(64 * t1);
    const times = s.flow.times('BYE');
    assert.deepEqual(times.slice(0, 4), [0, 500, 600 + t2, 600 + 2 * t2]);
    assert.equal(s.timeouts(), 1);
    assert.equal(nict.currentState, 'terminated');
  });

  test('final response: Completed, retransmitted finals absorbed, Timer K = T4 (0 when reliable)', { timeout: 30_000 }, () => {
    const s = setup();
    const req = request('BYE');
    const nict = new ClientNonInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated, s.user);
    nict.start();
    nict.receiveResponse(response(req, 200));
    nict.receiveResponse(response(req, 200));
    assert.deepEqual(s.got, [200]);
    s.clock.advance(t4 - 1);
    assert.equal(nict.currentState, 'completed');
    s.clock.advance(1);
    assert.equal(nict.currentState, 'terminated');
    const r = setup(true);
    const n2 = new ClientNonInviteTransaction(req, r.flow, r.clock, DEFAULT_TIMERS, r.onTerminated, r.user);
    n2.start();
    n2.receiveResponse(response(req, 200));
    r.clock.advance(0);
    assert.equal(n2.currentState, 'terminated');
  });
});

describe('INVITE server transaction (RFC 3261 §17.2.1, RFC 6026)', () => {
  test('retransmitted INVITE in Proceeding gets the last provisional again', { timeout: 30_000 }, () => {
    const s = setup();
    const req = request('INVITE');
    const ist = new ServerInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated);
    ist.respond(response(req, 100));
    ist.receiveRetransmission();
    ist.receiveRetransmission();
    assert.equal(s.flow.times('SIP/2.0 100').length, 3);
  });

  test('non-2xx final: Timer G retransmits (capped at T2) until ACK; ACK stops it; Timer I ends it', { timeout: 30_000 }, () => {
    const s = setup();
    const req = request('INVITE');
    const ist = new ServerInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated);
    ist.respond(response(req, 486));
    s.clock.advance(10_000);
    assert.deepEqual(s.flow.times('SIP/2.0 486'), [0, 500, 1500, 3500, 7500]);
    assert.equal(ist.receiveAck(), true);
    assert.equal(ist.currentState, 'confirmed');
    s.clock.advance(20_000);
    assert.equal(s.flow.times('SIP/2.0 486').length, 5, 'no retransmission after ACK');
    assert.equal(ist.currentState, 'terminated');
    assert.equal(s.clock.pending(), 0);
  });

  test('Timer H: no ACK within 64*T1 terminates and reports the ACK timeout', { timeout: 30_000 }, () => {
    const s = setup();
    const req = request('INVITE');
    let ackTimeouts = 0;
    const ist = new ServerInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated, { onAckTimeout: () => { ackTimeouts++; } });
    ist.respond(response(req, 404));
    s.clock.advance(64 * t1 - 1);
    assert.equal(ist.currentState, 'completed');
    s.clock.advance(1);
    assert.equal(ist.currentState, 'terminated');
    assert.equal(ackTimeouts, 1);
    const g = s.flow.times('SIP/2.0 404');
    assert.ok(g.length >= 8 && g.every((t, i) => i === 0 || t - g[i - 1] <= t2), `G intervals capped at T2: ${g}`);
  });

  test('retransmitted INVITE in Completed gets the final again; in Accepted it is absorbed', { timeout: 30_000 }, () => {
    const s = setup();
    const req = request('INVITE');
    const ist = new ServerInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated);
    ist.respond(response(req, 480));
    ist.receiveRetransmission();
    assert.equal(s.flow.times('SIP/2.0 480').length, 2);
    const s2 = setup();
    const ist2 = new ServerInviteTransaction(req, s2.flow, s2.clock, DEFAULT_TIMERS, s2.onTerminated);
    ist2.respond(response(req, 200));
    ist2.receiveRetransmission();
    assert.equal(s2.flow.sent.length, 1);
    assert.equal(ist2.currentState, 'accepted');
    s2.clock.advance(64 * t1);
    assert.equal(ist2.currentState, 'terminated', 'Timer L');
  });

  test('Timer I is 0 on a reliable transport and there is no Timer G', { timeout: 30_000 }, () => {
    const s = setup(true);
    const req = request('INVITE');
    const ist = new ServerInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated);
    ist.respond(response(req, 486));
    s.clock.advance(5000);
    assert.equal(s.flow.sent.length, 1);
    ist.receiveAck();
    s.clock.advance(0);
    assert.equal(ist.currentState, 'terminated');
  });
});

describe('non-INVITE server transaction (RFC 3261 §17.2.2)', () => {
  test('Trying absorbs retransmissions; Proceeding/Completed resend the last response; Timer J', { timeout: 30_000 }, () => {
    const s = setup();
    const req = request('BYE');
    const nist = new ServerNonInviteTransaction(req, s.flow, s.clock, DEFAULT_TIMERS, s.onTerminated);
    nist.receiveRetransmission();
    assert.equal(s.flow.sent.length, 0);
    nist.respond(response(req, 200));
    nist.receiveRetransmission();
    nist.receiveRetransmission();
    assert.equal(s.flow.times('SIP/2.0 200').length, 3);
    nist.respond(response(req, 500));
    assert.equal(s.flow.times('SIP/2.0 500').length, 0, 'a second final is ignored');
    s.clock.advance(64 * t1 - 1);
    assert.equal(nist.currentState, 'completed');
    s.clock.advance(1);
    assert.equal(nist.currentState, 'terminated');
    assert.equal(s.terminatedCount(), 1);
  });
});
