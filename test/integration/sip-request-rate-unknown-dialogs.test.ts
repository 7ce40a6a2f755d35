/**
 * Requests in a dialog never count against the per-source rate of new requests (docs/security.md "New
 * requests per source"): a call must not lose its BYE. But a request with a made-up To tag is in no dialog:
 * ferry sip answers it 481 from a server transaction of its own (32 s over UDP), and so it did for a CANCEL
 * that names no INVITE. Neither was counted, so one source could send them at any rate and fill the server
 * transaction table (FERRY_SIP_MAX_SERVER_TRANSACTIONS), after which every new call, registration and OPTIONS
 * from everyone got 503. Now such requests count as new: past the burst they are dropped unanswered like any
 * other new request. Positive controls: the flooding source's own call still ends with its BYE while the
 * source is over its rate, a CANCEL of its own ringing INVITE is still answered, and another source is served.
 *
 * ferry sip in process (real UDP and control sockets, a drachtio-srf app) on a FakeClock, so buckets refill
 * only when the test says; no restart hold (an unknown dialog is answered 481 at once).
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectBareSrf, routesApplied } from '../helpers/srf-app';
import { sipToken, TEST_SDP } from '../helpers/sip-udp-phone';
import { SourcePeer, requestIds, type RequestIds } from '../helpers/sip-source-peer';
import { answeredCallFrom, floodInBatches, openSourcePeer } from '../helpers/source-flood';
import { pollUntil } from '../helpers/wait-for';

const PER_SECOND = 10;
const BURST = 20;
/** datagrams sent at once before waiting for the engine to have read them (loopback UDP drops large bursts) */
const BATCH = 25;

describe('ferry sip: requests for unknown dialogs and CANCELs matching nothing count against the per-source rate', { timeout: 120_000 }, () => {
  const clock = new FakeClock(Date.now());
  let engine: RunningSipEngine;
  let srf: any;
  const cleanups: Array<() => unknown> = [];
  /** the ringing INVITEs the app holds (answered 487 when cancelled) */
  const cancelled: string[] = [];

  before(async () => {
    engine = await startSipEngine({ host: '127.0.0.1', clock, restartHoldMs: 0, requestRate: { perSecond: PER_SECOND, burst: BURST } });
    srf = await connectBareSrf(engine.ports.control);
    srf.options((_req: any, res: any) => res.send(200));
    srf.invite(async (req: any, res: any) => {
      if (/^sip:ring@/.test(req.uri)) {
        req.on('cancel', () => cancelled.push(req.get('Call-ID')));
        res.send(180);
        return;
      }
      await srf.createUAS(req, res, { localSdp: TEST_SDP });
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

  /** a BYE with a made-up To tag, or a CANCEL of an INVITE nobody sent */
  function forged(p: SourcePeer, method: 'BYE' | 'CANCEL', ids: RequestIds): string {
    const toTag = method === 'BYE' ? `;tag=${sipToken()}` : '';
    return [`${method} sip:service@127.0.0.1:${engine.ports.sip} SIP/2.0`, `Via: SIP/2.0/UDP ${p.address}:${p.port};branch=z9hG4bK${ids.branch};rport`,
      'Max-Forwards: 70', `From: <sip:peer@${p.address}>;tag=${ids.tag}`, `To: <sip:service@127.0.0.1>${toTag}`, `Call-ID: ${ids.callId}`,
      `CSeq: 1 ${method}`, 'Content-Length: 0', '', ''].join('\r\n');
  }

  /** sends `n` forged requests from `p` in batches, each once the engine has answered or dropped the previous; returns their Call-IDs */
  const flood = (p: SourcePeer, n: number, methods: Array<'BYE' | 'CANCEL'>): Promise<string[]> =>
    floodInBatches(p, n, (i, ids) => forged(p, methods[i % methods.length]!, ids), dropped, BATCH);

  test('a UDP flood of BYEs with made-up To tags and CANCELs of nothing: the burst is answered 481, the rest dropped and open no transaction; the source\'s own call still ends, its own CANCEL is answered, another source is served', { timeout: 60_000 }, async () => {
    const flooder = await peer('127.0.0.1');
    const other = await peer('127.0.0.2');

    // before the flood: a call (answered) and a ringing INVITE, both from the flooding source (two tokens)
    const { call, ok } = await answeredCallFrom(flooder, engine);
    const ringing = requestIds();
    flooder.send(flooder.request('INVITE', ringing, 'ring'));
    await pollUntil(() => flooder.answersTo(ringing.callId).find((a) => a.status === 180), { timeoutMs: 5_000, what: 'the 180 of the ringing INVITE' });
    const transactionsBefore = engine.engine.stats().serverTransactions;

    const droppedBefore = dropped();
    const sent = await flood(flooder, 200, ['BYE', 'CANCEL']);
    const answered = sent.filter((c) => flooder.answersTo(c).length > 0);
    assert.equal(answered.length, BURST - 2, 'the burst less the two INVITEs was answered');
    assert.ok(answered.every((c) => flooder.answersTo(c).every((a) => a.status === 481)), 'each with 481');
    assert.equal(dropped() - droppedBefore, 200 - (BURST - 2), 'every other one was dropped and counted');
    const opened = engine.engine.stats().serverTransactions - transactionsBefore;
    assert.ok(opened <= BURST, `the flood opened ${opened} server transactions`);

    // the source is over its rate: its call's BYE (a dialog ferry sip holds) is still served
    flooder.send(flooder.inDialog('BYE', ok));
    const byeOk = await pollUntil(() => flooder.answersTo(call.callId).find((a) => a.cseq === '2 BYE'), { timeoutMs: 5_000, what: 'the answer to the call\'s BYE' });
    assert.equal(byeOk.status, 200);
    // ...and so is the CANCEL of its own ringing INVITE (it names an INVITE transaction)
    flooder.send([`CANCEL sip:ring@127.0.0.1:${engine.ports.sip} SIP/2.0`, `Via: SIP/2.0/UDP ${flooder.address}:${flooder.port};branch=z9hG4bK${ringing.branch};rport`,
      'Max-Forwards: 70', `From: <sip:peer@${flooder.address}>;tag=${ringing.tag}`, 'To: <sip:ring@127.0.0.1>', `Call-ID: ${ringing.callId}`,
      'CSeq: 1 CANCEL', 'Content-Length: 0', '', ''].join('\r\n'));
    await pollUntil(() => flooder.answersTo(ringing.callId).find((a) => a.cseq === '1 CANCEL' && a.status === 200), { timeoutMs: 5_000, what: 'the 200 to the CANCEL' });
    await pollUntil(() => flooder.answersTo(ringing.callId).find((a) => a.status === 487), { timeoutMs: 5_000, what: 'the 487 to the cancelled INVITE' });
    await pollUntil(() => cancelled.includes(ringing.callId), { timeoutMs: 5_000, what: 'the app to see the CANCEL' });

    // another source: served, and its own forged BYE is answered 481 (the positive control of the drops)
    const ids = requestIds();
    other.send(other.request('OPTIONS', ids));
    assert.equal((await pollUntil(() => other.answersTo(ids.callId)[0], { timeoutMs: 5_000, what: 'an answer to the other source' })).status, 200);
    const otherBye = requestIds();
    other.send(forged(other, 'BYE', otherBye));
    assert.equal((await pollUntil(() => other.answersTo(otherBye.callId)[0], { timeoutMs: 5_000, what: 'the 481 to the other source' })).status, 481);

    // a second refills `perSecond` tokens: that many more of the flood are answered
    clock.advance(1000);
    const refilled = await flood(flooder, 2 * PER_SECOND, ['BYE']);
    assert.equal(flooder.answeredOf(refilled), PER_SECOND);
  });
});
