/**
 * New requests no app routes yet (docs/sip-engine.md, "New requests while no app routes them"): right
 * after ferry sip starts, or while no app is connected at all, a REGISTER or INVITE is held — its server
 * transaction open, so retransmissions are absorbed — and handed to the app that connects and routes its
 * method; one held past the deadline is answered 503 with Retry-After; a flood beyond the hold's bounds
 * is answered 503 at once, and what is held counts back to zero.
 *
 * ferry sip runs in-process on a FakeClock (the restart window and the hold deadline are advanced, not
 * waited for); phones are real UDP sockets, the app is the real drachtio-srf.
 */
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { FakeClock } from '../../src/common/clock';
import { startSipEngine, type RunningSipEngine, type SipEngineOptions } from '../../src/sip/sip-engine-server';
import { DEFAULT_UNROUTED_HOLD, UNROUTED_RETRY_AFTER_S } from '../../src/sip/engine/unrouted-request-hold';
import { DEFAULT_RESTART_HOLD_MS, MAX_RESTART_HELD } from '../../src/sip/engine/restart-held-requests';
import { connectBareSrf, routesApplied } from '../helpers/srf-app';
import { sipToken, TEST_SDP } from '../helpers/sip-udp-phone';
import { pollUntil } from '../helpers/wait-for';

const HOLD_MS = DEFAULT_UNROUTED_HOLD.holdMs;

interface Answer {
  status: number;
  callId: string;
  cseq: string;
  retryAfter: string | undefined;
}

/** A UDP phone on a chosen loopback address (127.0.0.x: distinct sources for the per-source bound). */
class Peer {
  readonly answers: Answer[] = [];
  private constructor(readonly socket: dgram.Socket, readonly address: string, readonly port: number, private readonly target: number) {}

  static async open(address: string, target: number): Promise<Peer> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => { socket.once('error', reject); socket.bind(0, address, () => resolve()); });
    const peer = new Peer(socket, address, socket.address().port, target);
    socket.on('message', (d) => {
      const head = d.toString('utf8').split('\r\n\r\n')[0]!.split('\r\n');
      const m = /^SIP\/2\.0 (\d{3})/.exec(head[0] ?? '');
      if (!m) return;
      const h = (name: string): string | undefined => {
        const l = head.find((x) => x.toLowerCase().startsWith(`${name.toLowerCase()}:`));
        return l?.slice(l.indexOf(':') + 1).trim();
      };
      peer.answers.push({ status: Number(m[1]), callId: h('Call-ID') ?? '', cseq: h('CSeq') ?? '', retryAfter: h('Retry-After') });
    });
    return peer;
  }

  send(text: string): void {
    this.socket.send(Buffer.from(text, 'utf8'), this.target, '127.0.0.1');
  }

  /** A request from this peer; the same `ids` give a byte-identical retransmission. */
  /** a BYE naming a dialog (its To tag) this ferry sip never saw */
  strayBye(i: { callId: string; branch: string; tag: string }): string {
    return ['BYE sip:service@127.0.0.1 SIP/2.0', `Via: SIP/2.0/UDP ${this.address}:${this.port};branch=z9hG4bK${i.branch};rport`, 'Max-Forwards: 70',
      `From: <sip:alice@127.0.0.1>;tag=${i.tag}`, `To: <sip:service@127.0.0.1>;tag=${i.tag}x`, `Call-ID: ${i.callId}`, 'CSeq: 2 BYE', 'Content-Length: 0', '', ''].join('\r\n');
  }

  request(method: 'REGISTER' | 'INVITE' | 'OPTIONS', ids: { callId: string; branch: string; tag: string }, body = ''): string {
    const uri = method === 'REGISTER' ? 'sip:127.0.0.1' : 'sip:service@127.0.0.1';
    const b = method === 'INVITE' ? TEST_SDP : body;
    return [`${method} ${uri} SIP/2.0`, `Via: SIP/2.0/UDP ${this.address}:${this.port};branch=z9hG4bK${ids.branch};rport`,
      'Max-Forwards: 70', `From: <sip:alice@127.0.0.1>;tag=${ids.tag}`, `To: <sip:${method === 'REGISTER' ? 'alice' : 'service'}@127.0.0.1>`,
      `Call-ID: ${ids.callId}`, `CSeq: 1 ${method}`, `Contact: <sip:alice@${this.address}:${this.port}>`,
      ...(method === 'REGISTER' ? ['Expires: 300'] : []), ...(b ? [`Content-Type: ${method === 'INVITE' ? 'application/sdp' : 'text/plain'}`] : []),
      `Content-Length: ${Buffer.byteLength(b)}`, '', b].join('\r\n');
  }

  answersTo(callId: string): Answer[] {
    return this.answers.filter((a) => a.callId === callId);
  }

  close(): void {
    try { this.socket.close(); } catch { /* closed */ }
  }
}

function ids(): { callId: string; branch: string; tag: string } {
  return { callId: sipToken(), branch: sipToken(), tag: sipToken() };
}

describe('ferry sip: new requests no app routes yet are held for the app that comes, bounded, then 503 with Retry-After', { timeout: 60_000 }, () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function engineOn(clock: FakeClock, options: Partial<SipEngineOptions> = {}): Promise<RunningSipEngine> {
    const engine = await startSipEngine({ clock, ...options });
    cleanups.push(() => engine.close());
    return engine;
  }
  async function peer(address: string, engine: RunningSipEngine): Promise<Peer> {
    const p = await Peer.open(address, engine.ports.sip);
    cleanups.push(() => p.close());
    return p;
  }
  /** An OPTIONS (never held) answered: the engine has read everything this peer sent before it. */
  async function drained(p: Peer): Promise<Answer> {
    const o = ids();
    p.send(p.request('OPTIONS', o));
    await pollUntil(() => p.answersTo(o.callId).length > 0, { timeoutMs: 5_000, what: 'the marker OPTIONS to be answered' });
    return p.answersTo(o.callId)[0]!;
  }

  test('F11: a REGISTER and an INVITE reaching a restarted ferry sip before its app is back are held and delivered once the app connects and routes them; their retransmissions are absorbed (the app gets each once)', { timeout: 20_000 }, async () => {
    const clock = new FakeClock(Date.now());
    const engine = await engineOn(clock);
    const phone = await peer('127.0.0.1', engine);
    const reg = ids();
    const inv = ids();
    phone.send(phone.request('REGISTER', reg));
    phone.send(phone.request('INVITE', inv));
    await pollUntil(() => engine.engine.stats().heldRequests === 2, { timeoutMs: 5_000, what: 'the REGISTER and the INVITE to be held' });
    // the phone retransmits while no app is there (timer E / timer A)
    phone.send(phone.request('REGISTER', reg));
    phone.send(phone.request('INVITE', inv));
    phone.send(phone.request('REGISTER', reg));
    const marker = await drained(phone);
    assert.equal(marker.status, 503, 'an OPTIONS is never held: 503 at once (positive control: the engine answers this phone)');
    assert.equal(marker.retryAfter, String(UNROUTED_RETRY_AFTER_S));
    assert.equal(engine.engine.stats().heldRequests, 2, 'retransmissions are absorbed, not held again');
    assert.deepEqual(phone.answersTo(reg.callId), [], 'no answer to the REGISTER while it is held');
    assert.deepEqual(phone.answersTo(inv.callId).map((a) => a.status), [100, 100], 'the INVITE got 100 Trying, repeated for its retransmission');

    clock.advance(HOLD_MS - 1); // still within the deadline
    const got = { register: 0, invite: 0 };
    const srf = await connectBareSrf(engine.ports.control);
    cleanups.push(() => srf.disconnect());
    srf.register((req: any, res: any) => { got.register++; res.send(200, { headers: { Contact: req.get('Contact'), Expires: '300' } }); });
    srf.invite((_req: any, res: any) => { got.invite++; res.send(486); });
    await routesApplied(srf);
    await pollUntil(() => phone.answersTo(reg.callId).some((a) => a.status === 200) && phone.answersTo(inv.callId).some((a) => a.status === 486),
      { timeoutMs: 5_000, what: 'the app to answer the held REGISTER (200) and INVITE (486)' });
    phone.send([`ACK sip:service@127.0.0.1 SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${inv.branch};rport`, 'Max-Forwards: 70',
      `From: <sip:alice@127.0.0.1>;tag=${inv.tag}`, `To: <sip:service@127.0.0.1>;tag=x`, `Call-ID: ${inv.callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n'));
    // a late retransmission of the REGISTER is answered by its transaction with the app's 200, not handed over again
    phone.send(phone.request('REGISTER', reg));
    await pollUntil(() => phone.answersTo(reg.callId).filter((a) => a.status === 200).length === 2, { timeoutMs: 5_000, what: 'the 200 resent for the late retransmission' });
    await drained(phone);
    assert.deepEqual(got, { register: 1, invite: 1 }, 'the app got each request exactly once');
    assert.equal(engine.engine.stats().heldRequests, 0);
    assert.equal(engine.engine.stats().pending, 0);
  });

  test('a REGISTER no app routes within the deadline is answered 503 with Retry-After at the deadline (no app connected, restart window over); once an app is connected and the window is over, an unrouted REGISTER gets 503 with Retry-After at once', { timeout: 20_000 }, async () => {
    const clock = new FakeClock(Date.now());
    const engine = await engineOn(clock);
    clock.advance(DEFAULT_RESTART_HOLD_MS); // the restart window is over: the hold now applies only because no app is connected
    const phone = await peer('127.0.0.1', engine);
    const reg = ids();
    phone.send(phone.request('REGISTER', reg));
    await pollUntil(() => engine.engine.stats().heldRequests === 1, { timeoutMs: 5_000, what: 'the REGISTER to be held (no app connected)' });
    clock.advance(HOLD_MS - 1);
    await drained(phone);
    assert.deepEqual(phone.answersTo(reg.callId), [], 'no answer 1 ms before the deadline');
    assert.equal(engine.engine.stats().heldRequests, 1);
    clock.advance(1);
    await pollUntil(() => phone.answersTo(reg.callId).length === 1, { timeoutMs: 5_000, what: 'the 503 at the deadline' });
    assert.deepEqual(phone.answersTo(reg.callId).map((a) => [a.status, a.retryAfter]), [[503, String(UNROUTED_RETRY_AFTER_S)]]);
    assert.equal(engine.engine.stats().heldRequests, 0);

    // an app is connected (it routes only INVITE) and the restart window is over: nothing is held
    const srf = await connectBareSrf(engine.ports.control);
    cleanups.push(() => srf.disconnect());
    srf.invite((_req: any, res: any) => res.send(486));
    await routesApplied(srf);
    const late = ids();
    phone.send(phone.request('REGISTER', late));
    await pollUntil(() => phone.answersTo(late.callId).length === 1, { timeoutMs: 5_000, what: 'the immediate 503' });
    assert.deepEqual(phone.answersTo(late.callId).map((a) => [a.status, a.retryAfter]), [[503, String(UNROUTED_RETRY_AFTER_S)]]);
    assert.equal(engine.engine.stats().heldRequests, 0);
  });

  test('a flood of unrouted REGISTERs: beyond the per-source and total bounds each gets 503 with Retry-After at once, another source still gets a place, the byte bound holds, and the held count returns to zero at the deadline', { timeout: 30_000 }, async () => {
    const clock = new FakeClock(Date.now());
    const limits = { maxRequests: 40, maxPerSource: 30, maxBytes: 64 * 1024 };
    const engine = await engineOn(clock, { unroutedHold: limits });
    const flooder = await peer('127.0.0.1', engine);
    const other = await peer('127.0.0.2', engine);
    const flood = Array.from({ length: 100 }, () => ids());
    for (const f of flood) flooder.send(flooder.request('REGISTER', f));
    await drained(flooder);
    const immediate = flood.flatMap((f) => flooder.answersTo(f.callId));
    assert.equal(engine.engine.stats().heldRequests, limits.maxPerSource, 'one source holds at most maxPerSource');
    assert.equal(immediate.length, 100 - limits.maxPerSource, 'the rest answered at once');
    assert.ok(immediate.every((a) => a.status === 503 && a.retryAfter === String(UNROUTED_RETRY_AFTER_S)), 'each with 503 and Retry-After');

    const others = Array.from({ length: 15 }, () => ids());
    for (const o of others) other.send(other.request('REGISTER', o));
    await drained(other);
    assert.equal(engine.engine.stats().heldRequests, limits.maxRequests, 'another source gets the places left, up to the total bound');
    assert.deepEqual(others.flatMap((o) => other.answersTo(o.callId)).map((a) => a.status), Array(15 - (limits.maxRequests - limits.maxPerSource)).fill(503));

    clock.advance(HOLD_MS);
    await pollUntil(() => flood.every((f) => flooder.answersTo(f.callId).length === 1) && others.every((o) => other.answersTo(o.callId).length === 1),
      { timeoutMs: 5_000, what: 'every held REGISTER answered at the deadline' });
    assert.equal(engine.engine.stats().heldRequests, 0, 'nothing held after the deadline');
    assert.ok([...flooder.answers, ...other.answers].filter((a) => a.cseq.endsWith('REGISTER')).every((a) => a.status === 503 && a.retryAfter === '5'));

    // the byte bound: 10 kB bodies, 64 kB held at most
    const big = await peer('127.0.0.3', engine);
    const body = 'x'.repeat(10_000);
    const heavy = Array.from({ length: 8 }, () => ids());
    for (const h of heavy) big.send(big.request('REGISTER', h, body));
    await drained(big);
    assert.equal(engine.engine.stats().heldRequests, 6, 'six 10 kB requests fit in 64 kB, the seventh does not');
    assert.deepEqual(heavy.flatMap((h) => big.answersTo(h.callId)).map((a) => a.status), [503, 503]);
    clock.advance(HOLD_MS);
    await pollUntil(() => engine.engine.stats().heldRequests === 0 && heavy.every((h) => big.answersTo(h.callId).length === 1),
      { timeoutMs: 5_000, what: 'the heavy REGISTERs answered at the deadline' });
  });

  test('right after start, in-dialog requests for unknown dialogs are held up to the bound; beyond it they get 481 at once, and the held count returns to zero when the restart window closes', { timeout: 30_000 }, async () => {
    const clock = new FakeClock(Date.now());
    const engine = await engineOn(clock);
    const flooder = await peer('127.0.0.1', engine);
    const byes = Array.from({ length: MAX_RESTART_HELD + 30 }, () => ids());
    for (let i = 0; i < byes.length; i += 100) {
      for (const b of byes.slice(i, i + 100)) flooder.send(flooder.strayBye(b));
      await drained(flooder); // the engine has read this batch: the next one does not overflow the socket buffer
    }
    assert.equal(engine.engine.stats().heldRequests, MAX_RESTART_HELD, 'held up to the bound');
    const immediate = byes.flatMap((b) => flooder.answersTo(b.callId));
    assert.deepEqual([...new Set(immediate.map((a) => a.status))], [481]);
    assert.equal(immediate.length, 30, 'the rest answered at once');
    clock.advance(DEFAULT_RESTART_HOLD_MS);
    assert.equal(engine.engine.stats().heldRequests, 0, 'every held BYE answered when the window closed');
    // (a thousand answers at once overflow the phone's socket buffer, so a few held ones are asked again:
    // their retransmissions get the 481 their transactions sent)
    const sample = byes.slice(0, 5);
    assert.ok(sample.every((b) => flooder.answersTo(b.callId).length === 0), 'these were held (no answer before the window closed)');
    for (const b of sample) flooder.send(flooder.strayBye(b));
    await pollUntil(() => sample.every((b) => flooder.answersTo(b.callId).some((a) => a.status === 481)), { timeoutMs: 5_000, what: 'the held BYEs answered 481' });
  });
});
