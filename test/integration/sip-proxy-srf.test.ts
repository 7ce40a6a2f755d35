/**
 * Acceptance for the `proxy` verb: the unmodified npm drachtio-srf connected to ferry sip (in this
 * process, short RFC 3261 timers) proxies SIPp callers to SIPp callees with `srf.proxyRequest()`:
 * promise and callback forms, Record-Route (ACK, BYE from either side and a hold re-INVITE pass
 * through ferry sip), a first destination that fails (503, no answer within the provisional timeout,
 * ringing past the final timeout) before a second answers, a 302 followed, simultaneous forking, the
 * caller's CANCEL, and the engine's counts back to zero after each.
 * Destinations that fail are reached over TCP: an INVITE client transaction that got a 3xx-6xx over
 * UDP lingers 32 s (RFC 3261 Timer D), over TCP it ends at once, so the counts can be checked quickly.
 */
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectBareSrf, routesApplied, waitFor } from '../helpers/srf-app';
import { freePort } from '../helpers/free-port';
import { startSipp, runSipp, killAllSipp, describeSipp, tracedMessages, headerOf, countReceived, type SippProcess, type SippResult,
  type TracedMessage } from '../helpers/sipp';

interface ProxyResults {
  connected: boolean;
  finalStatus?: number;
  responses: Array<{ address: string; port: number; msgs: Array<{ status: number }> }>;
}

type Handler = (req: any, res: any) => void;

const TEST_TIMEOUT = { timeout: 40_000 };

/** Every status srf collected in `results.responses`, in order. */
function statuses(r: ProxyResults): number[] {
  return r.responses.flatMap((x) => x.msgs.map((m) => m.status));
}

function received(r: SippResult, startLine: RegExp): TracedMessage[] {
  return tracedMessages(r).filter((m) => m.direction === 'received' && startLine.test(m.firstLine));
}

describe('drachtio-srf proxyRequest through ferry sip, SIPp caller and callees', () => {
  let engine: RunningSipEngine;
  let srf: any;
  let handler: Handler = () => {};
  const sipps: SippProcess[] = [];

  before(async () => {
    engine = await startSipEngine({ timers: { t1: 20, t2: 160, t4: 200 } });
    srf = await connectBareSrf(engine.ports.control);
    srf.invite((req: any, res: any) => handler(req, res));
    await routesApplied(srf);
  });

  afterEach(async () => {
    for (const s of sipps.splice(0)) await s.stop();
  });

  after(async () => {
    killAllSipp();
    try { srf?.disconnect(); } catch { /* already gone */ }
    await engine?.close();
  });

  async function callee(scenario: string, transport: 'udp' | 'tcp', keys: Record<string, string> = {}, extraArgs: string[] = []): Promise<{ sipp: SippProcess; uri: string }> {
    const port = await freePort({ protocols: [transport] });
    const sipp = await startSipp({ scenario, localPort: port, transport, timeoutS: 20, keys, extraArgs });
    sipps.push(sipp);
    await sipp.ready();
    return { sipp, uri: transport === 'tcp' ? `sip:127.0.0.1:${port};transport=tcp` : `127.0.0.1:${port}` };
  }

  function caller(scenario = 'uac-call.xml'): Promise<SippResult> {
    return freePort().then((localPort) => runSipp({ scenario, localPort, remote: `127.0.0.1:${engine.ports.sip}`, timeoutS: 20, talkMs: 100 }));
  }

  /** The engine's live counts, polled until every transaction, pending request, dialog and proxy operation is gone. */
  async function countsBackToZero(): Promise<void> {
    const counts = () => engine.engine.stats() as unknown as Record<string, number>;
    assert.ok('proxySessions' in counts() && 'proxyForwards' in counts(), 'the engine reports the proxy counts');
    const keys = ['serverTransactions', 'clientTransactions', 'pending', 'dialogs', 'proxySessions', 'proxyForwards'];
    await waitFor(() => keys.every((k) => counts()[k] === 0), `engine counts back to zero (${JSON.stringify(counts())})`, 15_000)
      .catch(() => assert.fail(`engine counts not back to zero: ${JSON.stringify(counts())}`));
  }

  test('promise form with remainInDialog: the call is relayed, Record-Route keeps ferry sip in it, ACK and BYE pass through', TEST_TIMEOUT, async () => {
    const b = await callee('proxy-uas-answer.xml', 'udp');
    let results: ProxyResults | undefined;
    let failure: unknown;
    handler = (req) => {
      srf.proxyRequest(req, b.uri, { remainInDialog: true }).then((r: ProxyResults) => { results = r; }, (e: unknown) => { failure = e; });
    };
    const a = await caller();
    assert.equal(a.exitCode, 0, describeSipp(a));
    const bResult = await b.sipp.done;
    assert.equal(bResult.exitCode, 0, describeSipp(bResult));
    await waitFor(() => results !== undefined || failure !== undefined, 'proxyRequest settles');
    assert.equal(failure, undefined);
    assert.equal(results?.finalStatus, 200);
    assert.equal(results?.connected, true);
    assert.deepEqual(statuses(results!), [200], 'srf saw the final response of the one destination');

    const invite = received(bResult, /^INVITE /)[0];
    assert.equal(headerOf(invite, 'Max-Forwards'), '69', 'Max-Forwards decremented by the proxy');
    assert.match(headerOf(invite, 'Record-Route') ?? '', /;lr;ferry-rr=[A-Za-z0-9_-]{22}>/, 'the callee sees ferry sip\'s Record-Route, with the stamp of the call');
    assert.match(headerOf(invite, 'Via') ?? '', /branch=z9hG4bKfp/, 'the proxy\'s Via on top');
    assert.equal(received(a, /^SIP\/2\.0 180/).length >= 1, true, 'the callee\'s 180 was relayed to the caller');
    const ok = received(a, /^SIP\/2\.0 200/).find((m) => /INVITE/.test(headerOf(m, 'CSeq') ?? ''));
    assert.match(headerOf(ok!, 'Record-Route') ?? '', /ferry-rr/, 'the caller got the Record-Route in the 200');
    const ack = received(bResult, /^ACK /)[0];
    const bye = received(bResult, /^BYE /)[0];
    assert.ok(ack && bye, 'the callee got the ACK and the BYE');
    assert.match(headerOf(bye, 'Via') ?? '', /branch=z9hG4bKfp/, 'the BYE came through ferry sip (its Via on top)');
    assert.equal(headerOf(bye, 'Route'), undefined, 'ferry sip removed its own Route from the BYE');
    assert.equal(countReceived(a, /^SIP\/2\.0 200/), 2, 'the caller got the 200 to its INVITE and to its BYE');
    await countsBackToZero();
  });

  test('remainInDialog: the callee hangs up, its BYE passes through ferry sip to the caller', TEST_TIMEOUT, async () => {
    const b = await callee('proxy-uas-hangup.xml', 'udp');
    let results: ProxyResults | undefined;
    handler = (req) => { srf.proxyRequest(req, b.uri, { remainInDialog: true }).then((r: ProxyResults) => { results = r; }); };
    const a = await caller('uac-await-bye.xml');
    assert.equal(a.exitCode, 0, describeSipp(a));
    const bResult = await b.sipp.done;
    assert.equal(bResult.exitCode, 0, `the callee got the 200 to its BYE back through ferry sip: ${describeSipp(bResult)}`);
    const bye = received(a, /^BYE /)[0];
    assert.match(headerOf(bye, 'Via') ?? '', /branch=z9hG4bKfp/, 'the caller got the BYE from ferry sip');
    assert.equal(headerOf(bye, 'Route'), undefined, 'without ferry sip\'s Route');
    await waitFor(() => results !== undefined, 'proxyRequest resolves');
    assert.equal(results?.finalStatus, 200);
    await countsBackToZero();
  });

  test('remainInDialog: a re-INVITE (hold), its ACK and the BYE pass through ferry sip', TEST_TIMEOUT, async () => {
    const b = await callee('proxy-uas-hold.xml', 'udp');
    handler = (req) => { srf.proxyRequest(req, b.uri, { remainInDialog: true }).catch(() => {}); };
    const a = await caller('uac-hold.xml');
    assert.equal(a.exitCode, 0, `the caller's re-INVITE was answered a=recvonly through ferry sip: ${describeSipp(a)}`);
    const bResult = await b.sipp.done;
    assert.equal(bResult.exitCode, 0, describeSipp(bResult));
    const invites = received(bResult, /^INVITE /);
    assert.equal(invites.length, 2);
    assert.match(headerOf(invites[1], 'Via') ?? '', /branch=z9hG4bKfp/, 'the re-INVITE came through ferry sip');
    assert.ok(received(bResult, /^ACK /).length >= 2, 'both ACKs were relayed');
    await countsBackToZero();
  });

  test('callback form, serial: the first destination answers 503, the second answers; the caller never sees the 503', TEST_TIMEOUT, async () => {
    const failing = await callee('proxy-uas-unavailable.xml', 'tcp');
    const answering = await callee('proxy-uas-answer.xml', 'udp');
    let results: ProxyResults | undefined;
    let failure: unknown;
    handler = (req) => {
      srf.proxyRequest(req, [failing.uri, answering.uri], { remainInDialog: true }, (err: unknown, r: ProxyResults) => {
        failure = err ?? undefined;
        results = r;
      });
    };
    const a = await caller();
    assert.equal(a.exitCode, 0, describeSipp(a));
    const f = await failing.sipp.done;
    assert.equal(f.exitCode, 0, `the 503 destination got its ACK: ${describeSipp(f)}`);
    const b = await answering.sipp.done;
    assert.equal(b.exitCode, 0, describeSipp(b));
    await waitFor(() => results !== undefined || failure !== undefined, 'the proxyRequest callback');
    assert.equal(failure, undefined);
    assert.deepEqual(statuses(results!), [503, 200], 'srf saw both final responses, in order');
    assert.equal(results?.connected, true);
    assert.equal(countReceived(a, /^SIP\/2\.0 503/), 0, 'the 503 stayed in the proxy');
    assert.equal(received(b, /^BYE /).length, 1, 'the BYE reached the answering destination through ferry sip');
    await countsBackToZero();
  });

  test('serial: a destination that never answers is given up after provisionalTimeout, the next one answers', TEST_TIMEOUT, async () => {
    const silentPort = await freePort({ protocols: ['udp'] }); // nothing listens there: datagrams vanish
    const answering = await callee('proxy-uas-answer.xml', 'udp');
    let results: ProxyResults | undefined;
    const started = Date.now();
    let answeredAfterMs = 0;
    handler = (req) => {
      srf.proxyRequest(req, [`127.0.0.1:${silentPort}`, answering.uri], { remainInDialog: true, provisionalTimeout: '300ms' })
        .then((r: ProxyResults) => { results = r; answeredAfterMs = Date.now() - started; });
    };
    const a = await caller();
    assert.equal(a.exitCode, 0, describeSipp(a));
    const b = await answering.sipp.done;
    assert.equal(b.exitCode, 0, describeSipp(b));
    await waitFor(() => results !== undefined, 'proxyRequest resolves');
    assert.deepEqual(statuses(results!), [200], 'the silent destination sent nothing; the second answered');
    assert.ok(answeredAfterMs >= 300, `the second destination was tried only after the 300 ms provisional timeout (${answeredAfterMs} ms)`);
    await countsBackToZero();
  });

  test('finalTimeout: a destination that rings too long is cancelled, the next one answers', TEST_TIMEOUT, async () => {
    const ringing = await callee('uas-ring-cancelled.xml', 'tcp');
    const answering = await callee('proxy-uas-answer.xml', 'udp');
    let results: ProxyResults | undefined;
    let answeredAfterMs = 0;
    handler = (req) => {
      const started = Date.now();
      srf.proxyRequest(req, [ringing.uri, answering.uri], { remainInDialog: true, finalTimeout: '500ms' })
        .then((r: ProxyResults) => { results = r; answeredAfterMs = Date.now() - started; });
    };
    const a = await caller();
    assert.equal(a.exitCode, 0, describeSipp(a));
    const r = await ringing.sipp.done;
    assert.equal(r.exitCode, 0, `the ringing destination got a CANCEL and ACKed its 487: ${describeSipp(r)}`);
    const b = await answering.sipp.done;
    assert.equal(b.exitCode, 0, describeSipp(b));
    await waitFor(() => results !== undefined, 'proxyRequest resolves');
    assert.deepEqual(statuses(results!), [200], 'a destination given up at its timeout reports nothing (its late 487 is dropped)');
    assert.ok(answeredAfterMs >= 500, `the second destination answered only after the 500 ms final timeout (${answeredAfterMs} ms)`);
    await countsBackToZero();
  });

  test('followRedirects: a 302 is followed to its Contact, which answers; the caller never sees the 302', TEST_TIMEOUT, async () => {
    const answering = await callee('proxy-uas-answer.xml', 'udp');
    const redirect = await callee('proxy-uas-redirect.xml', 'tcp', { target: `sip:${answering.uri}` });
    let results: ProxyResults | undefined;
    handler = (req) => {
      srf.proxyRequest(req, redirect.uri, { remainInDialog: true, followRedirects: true }).then((r: ProxyResults) => { results = r; });
    };
    const a = await caller();
    assert.equal(a.exitCode, 0, describeSipp(a));
    const r = await redirect.sipp.done;
    assert.equal(r.exitCode, 0, `the redirect server got its ACK: ${describeSipp(r)}`);
    const b = await answering.sipp.done;
    assert.equal(b.exitCode, 0, describeSipp(b));
    await waitFor(() => results !== undefined, 'proxyRequest resolves');
    assert.deepEqual(statuses(results!), [302, 200]);
    assert.equal(countReceived(a, /^SIP\/2\.0 302/), 0, 'the 302 stayed in the proxy');
    await countsBackToZero();
  });

  /** An OPTIONS from the app through ferry sip to `uri`, answered 200: ferry sip's connection to a TCP destination is then up. */
  function optionsAnswered(uri: string): Promise<void> {
    return new Promise((resolve, reject) => {
      srf.request(uri, { method: 'OPTIONS' }, (err: unknown, req: any) => {
        if (err) return reject(err);
        req.on('response', (res: { status: number }) => (res.status === 200 ? resolve() : reject(new Error(`OPTIONS answered ${res.status}`))));
      });
    });
  }

  test('forking simultaneous: both destinations ring, one answers, the other is cancelled', TEST_TIMEOUT, async () => {
    // two calls at the ringing destination: the OPTIONS, then the INVITE
    const ringing = await callee('uas-options-or-ring-cancelled.xml', 'tcp', {}, ['-m', '2']);
    const answering = await callee('proxy-uas-answer.xml', 'udp');
    // Both INVITEs go out before any answer only when neither waits for a connection: a TCP branch whose
    // connection is still being set up when the other destination answers is never sent (as drachtio-server
    // drops a branch not yet started; RFC 3261 §16.7 step 10 cancels only branches that were sent). So the
    // connection to the TCP destination is made first, by an OPTIONS, and the proxy finds it open.
    await optionsAnswered(ringing.uri);
    let results: ProxyResults | undefined;
    handler = (req) => {
      srf.proxyRequest(req, [ringing.uri, answering.uri], { remainInDialog: true, forking: 'simultaneous' }).then((r: ProxyResults) => { results = r; });
    };
    const a = await caller();
    assert.equal(a.exitCode, 0, describeSipp(a));
    const r = await ringing.sipp.done;
    assert.equal(r.exitCode, 0, `the ringing destination was cancelled and ACKed its 487: ${describeSipp(r)}`);
    assert.equal(received(r, /^CANCEL /).length >= 1, true);
    const b = await answering.sipp.done;
    assert.equal(b.exitCode, 0, describeSipp(b));
    await waitFor(() => results !== undefined, 'proxyRequest resolves');
    assert.equal(results?.finalStatus, 200);
    assert.equal(countReceived(a, /^SIP\/2\.0 487/), 0, 'the caller only got the answer');
    await countsBackToZero();
  });

  test('the caller cancels: ferry sip answers 487 and cancels the ringing destination', TEST_TIMEOUT, async () => {
    const ringing = await callee('uas-ring-cancelled.xml', 'tcp');
    let results: ProxyResults | undefined;
    handler = (req) => {
      srf.proxyRequest(req, ringing.uri).then((r: ProxyResults) => { results = r; });
    };
    const a = await caller('uac-cancel.xml');
    assert.equal(a.exitCode, 0, describeSipp(a));
    const r = await ringing.sipp.done;
    assert.equal(r.exitCode, 0, `the destination got the CANCEL and the ACK of its 487: ${describeSipp(r)}`);
    await waitFor(() => results !== undefined, 'proxyRequest resolves');
    assert.equal(results?.connected, false);
    assert.deepEqual(statuses(results!), [487], 'srf saw the destination\'s 487');
    await countsBackToZero();
  });
});
