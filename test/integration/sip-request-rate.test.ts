/**
 * The per-source rate of new requests (docs/security.md "New requests per source"): a running ferry sip in
 * process (real UDP, TCP and control sockets, a drachtio-srf app) on a FakeClock, so its buckets refill only
 * when the test advances time. A flood of new requests from one source: the first `burst` are answered and
 * reach the app, the rest get nothing, open no transaction and never reach the app, and are counted; another
 * source is served meanwhile; the flooder's call in progress still ends with its BYE; an exempt source is
 * never limited; a second later `perSecond` more get through. Over TCP the same, and the connection stays
 * open. Garbage and floods from many sources keep the limiter within its bound of tracked sources.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { FakeClock } from '../../src/common/clock';
import { AddressList } from '../../src/common/address-list';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectBareSrf, routesApplied } from '../helpers/srf-app';
import { sipToken, TEST_SDP } from '../helpers/sip-udp-phone';
import { SourcePeer, requestIds, type PeerAnswer } from '../helpers/sip-source-peer';
import { SAMPLES, mutate, prng } from '../helpers/sip-fuzz-samples';
import { answeredCallFrom, floodInBatches, openSourcePeer } from '../helpers/source-flood';
import { pollUntil } from '../helpers/wait-for';

const PER_SECOND = 10;
const BURST = 20;
const MAX_SOURCES = 50;
/** datagrams sent at once before waiting for the engine to have read them (loopback UDP drops large bursts) */
const BATCH = 25;

describe('ferry sip: new requests per source are rate-limited; in-dialog requests and exempt sources are not', { timeout: 120_000 }, () => {
  const clock = new FakeClock(Date.now());
  let engine: RunningSipEngine;
  let srf: any;
  /** Call-IDs of the new requests the app was handed */
  const reachedApp = new Set<string>();
  const ended: string[] = [];
  const cleanups: Array<() => unknown> = [];

  before(async () => {
    engine = await startSipEngine({
      host: '127.0.0.1', clock,
      requestRate: { perSecond: PER_SECOND, burst: BURST, exempt: AddressList.parse('127.0.0.3, 127.0.0.9'), maxSources: MAX_SOURCES },
    });
    srf = await connectBareSrf(engine.ports.control);
    srf.options((req: any, res: any) => { reachedApp.add(req.get('Call-ID')); res.send(200); });
    srf.invite(async (req: any, res: any) => {
      reachedApp.add(req.get('Call-ID'));
      // a call to `call` is answered; the flood's INVITEs are turned down
      if (!/^sip:call@/.test(req.uri)) return res.send(486);
      const d = await srf.createUAS(req, res, { localSdp: TEST_SDP });
      d.on('destroy', () => ended.push(d.sip.callId));
    });
    await routesApplied(srf);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  after(async () => {
    try { srf.disconnect(); } catch { /* gone */ }
    await engine.close();
  });

  const peer = (address: string): Promise<SourcePeer> => openSourcePeer(address, engine.ports.sip, cleanups);
  const dropped = (): number => engine.requests.stats().dropped;

  /**
   * Sends `n` new requests (`methods` in turn) from `p` in batches, each batch once the engine has dealt with
   * the previous one (every request answered or counted as dropped). Returns their Call-IDs.
   */
  const flood = (p: SourcePeer, n: number, methods: string[]): Promise<string[]> =>
    floodInBatches(p, n, (i, ids) => p.request(methods[i % methods.length]!, ids), dropped, BATCH);

  /** One OPTIONS from `p` and its answer (the source is served). */
  async function served(p: SourcePeer): Promise<PeerAnswer> {
    const ids = requestIds();
    p.send(p.request('OPTIONS', ids));
    return pollUntil(() => p.answersTo(ids.callId)[0], { timeoutMs: 5_000, what: `an answer to an OPTIONS from ${p.address}` });
  }

  test('a UDP flood of OPTIONS and INVITEs from one source: the first `burst` are answered, the rest dropped unanswered, counted and never seen by the app; a retransmission of an answered one is answered again; another source is served meanwhile; the flooder\'s BYE ends its call; a second later `perSecond` more are let in', { timeout: 60_000 }, async () => {
    const flooder = await peer('127.0.0.1');
    const other = await peer('127.0.0.2');

    // a call from the flooding source, set up before the flood (its INVITE takes one token; its ACK none)
    const { call, ok } = await answeredCallFrom(flooder, engine);

    // an OPTIONS answered before the flood (one more token)
    const early = requestIds();
    flooder.send(flooder.request('OPTIONS', early));
    await pollUntil(() => flooder.answersTo(early.callId).length === 1, { timeoutMs: 5_000, what: 'the answer to the OPTIONS before the flood' });

    const droppedBefore = dropped();
    const first = await flood(flooder, 100, ['OPTIONS', 'INVITE']);
    assert.equal(flooder.answeredOf(first), BURST - 2, 'the burst less the call\'s INVITE and the OPTIONS before was answered');
    assert.equal(dropped() - droppedBefore, 100 - (BURST - 2), 'every other request was dropped and counted');
    await pollUntil(() => first.filter((c) => reachedApp.has(c)).length === BURST - 2, { timeoutMs: 5_000, what: 'the answered ones to reach the app' });

    // a retransmission of the OPTIONS answered before (its transaction is still there) starts nothing new:
    // answered again from the transaction, not counted, even though the source is over its rate
    flooder.send(flooder.request('OPTIONS', early));
    await pollUntil(() => flooder.answersTo(early.callId).length === 2, { timeoutMs: 5_000, what: 'the retransmission answered again' });
    assert.equal(dropped() - droppedBefore, 100 - (BURST - 2));
    assert.ok(first.every((c) => (flooder.answersTo(c).length > 0) === reachedApp.has(c)), 'the app saw exactly the answered ones');
    // the dropped ones opened no transaction: what is open is the answered INVITEs' (turned down, not ACKed here)
    assert.ok(engine.engine.stats().serverTransactions <= BURST, `${engine.engine.stats().serverTransactions} server transactions open`);

    // meanwhile another source is served (the positive control of the drops above)
    assert.equal((await served(other)).status, 200);
    const more = await flood(flooder, 30, ['OPTIONS', 'REGISTER', 'SUBSCRIBE', 'MESSAGE']);
    assert.equal(flooder.answeredOf(more), 0, 'the flooder still gets nothing');
    assert.equal((await served(other)).status, 200);

    // the call in progress ends: its BYE is in a dialog and never counts
    flooder.send(flooder.inDialog('BYE', ok));
    const byeOk = await pollUntil(() => flooder.answersTo(call.callId).find((a) => a.cseq === '2 BYE'), { timeoutMs: 5_000, what: 'the answer to the BYE' });
    assert.equal(byeOk.status, 200);
    await pollUntil(() => ended.includes(call.callId), { timeoutMs: 5_000, what: 'the app to see its dialog end' });

    // one second refills `perSecond` tokens: exactly that many more are let in
    clock.advance(1000);
    const refilled = await flood(flooder, 2 * PER_SECOND, ['OPTIONS']);
    assert.equal(flooder.answeredOf(refilled), PER_SECOND);
    assert.ok(refilled.every((c) => (flooder.answersTo(c).length > 0) === reachedApp.has(c)), 'the app saw exactly the answered ones');
  });

  test('an exempt source (FERRY_SIP_RATE_EXEMPT) is never limited: 5 x the burst of new requests, every one answered', { timeout: 30_000 }, async () => {
    const trunk = await peer('127.0.0.3');
    const droppedBefore = dropped();
    const sent = await flood(trunk, 5 * BURST, ['OPTIONS', 'INVITE']);
    assert.equal(trunk.answeredOf(sent), 5 * BURST);
    assert.equal(dropped(), droppedBefore);
    await pollUntil(() => sent.every((c) => reachedApp.has(c)), { timeoutMs: 5_000, what: 'every request to reach the app' });
  });

  test('over TCP: past the burst the requests are dropped and the connection kept; after a refill the same connection is served', { timeout: 30_000 }, async () => {
    const socket = net.connect({ port: engine.ports.sip, host: '127.0.0.1', localAddress: '127.0.0.4' });
    const received: Buffer[] = [];
    let closed = false;
    socket.on('data', (d: Buffer) => { received.push(d); });
    socket.on('error', () => { /* a reset shows as the close below */ });
    socket.on('close', () => { closed = true; });
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
    cleanups.push(() => socket.destroy());
    const conn = { socket, text: (): string => Buffer.concat(received).toString('latin1') };
    const port = socket.localPort!;
    const options = (callId: string): string => ['OPTIONS sip:service@127.0.0.1 SIP/2.0', `Via: SIP/2.0/TCP 127.0.0.4:${port};branch=z9hG4bK${sipToken()}`,
      'Max-Forwards: 70', `From: <sip:tcp@127.0.0.4>;tag=${sipToken()}`, 'To: <sip:service@127.0.0.1>', `Call-ID: ${callId}`,
      'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
    const answered = (ids: string[]): number => ids.filter((c) => conn.text().includes(`Call-ID: ${c}\r\n`)).length;
    const droppedBefore = dropped();
    const ids = Array.from({ length: 3 * BURST }, () => `tcp-${sipToken()}`);
    conn.socket.write(ids.map(options).join(''));
    await pollUntil(() => answered(ids) + dropped() - droppedBefore === ids.length, { timeoutMs: 5_000, what: 'every TCP request answered or dropped' });
    assert.equal(answered(ids), BURST);
    assert.equal(dropped() - droppedBefore, 2 * BURST);
    assert.equal(closed, false, 'the connection is kept');

    clock.advance(1000);
    const later = `tcp-${sipToken()}`;
    conn.socket.write(options(later));
    await pollUntil(() => answered([later]) === 1, { timeoutMs: 5_000, what: 'an answer on the same connection after the refill' });
  });

  test('garbage and floods from 200 sources: the limiter never tracks more than its bound of sources and the engine still serves', { timeout: 60_000 }, async () => {
    const rnd = prng(11);
    const marker = await peer('127.0.0.9'); // exempt: its answered OPTIONS says the engine has read what came before
    const sources: SourcePeer[] = [];
    for (let i = 1; i <= 200; i++) sources.push(await peer(`127.0.1.${i}`));
    const droppedBefore = dropped();
    let mostTracked = 0;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < sources.length; i += BATCH) {
        for (const p of sources.slice(i, i + BATCH)) {
          const sample = SAMPLES[Math.floor(rnd() * SAMPLES.length)]!;
          p.send(rnd() < 0.5 ? mutate(Buffer.from(sample), rnd) : Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256))));
          p.send(p.request('OPTIONS', requestIds()));
        }
        assert.equal((await served(marker)).status, 200);
        assert.ok(engine.requests.stats().sources <= MAX_SOURCES, `${engine.requests.stats().sources} sources tracked`);
        mostTracked = Math.max(mostTracked, engine.requests.stats().sources);
      }
    }
    assert.equal(mostTracked, MAX_SOURCES, 'the bound was reached (more sources sent than it keeps)');
    // a few of them flood past their burst: dropped, still within the bound
    for (const p of sources.slice(0, 3)) await flood(p, BURST + 10, ['OPTIONS']);
    assert.ok(dropped() - droppedBefore >= 3 * 10, `${dropped() - droppedBefore} dropped`);
    assert.ok(engine.requests.stats().sources <= MAX_SOURCES, `${engine.requests.stats().sources} sources tracked`);
    // a source never seen is served at once
    assert.equal((await served(await peer('127.0.2.1'))).status, 200);
  });
});
