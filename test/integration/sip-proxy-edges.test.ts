/**
 * The `proxy` verb at its edges, with the real npm drachtio-srf on ferry sip (in this process, short
 * RFC 3261 timers), a scripted UDP phone as caller (it can send its ACK and BYE anywhere) and SIPp
 * callees: without `remainInDialog` ferry sip leaves the dialog; when every destination fails the
 * best response reaches the caller (a 503 as 500); a request that loops back is refused 482 and one
 * out of hops 483; options srf cannot mean are refused and the request stays with the app.
 */
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectBareSrf, routesApplied, waitFor } from '../helpers/srf-app';
import { freePort } from '../helpers/free-port';
import { startSipp, killAllSipp, describeSipp, tracedMessages, headerOf, type SippProcess } from '../helpers/sipp';
import { SipUdpPhone, inviteText, sipToken, type ReceivedSip } from '../helpers/sip-udp-phone';

interface ProxyResults {
  connected: boolean;
  finalStatus?: number;
  responses: Array<{ msgs: Array<{ status: number }> }>;
}

type Handler = (req: any, res: any) => void;

const TEST_TIMEOUT = { timeout: 30_000 };

function statuses(r: ProxyResults): number[] {
  return r.responses.flatMap((x) => x.msgs.map((m) => m.status));
}

/** A request from the phone in the call the response `res` belongs to (the caller's ACK or BYE). */
function inCall(phone: SipUdpPhone, method: string, res: ReceivedSip, uri: string, cseq: string, branch = sipToken()): string {
  return [`${method} ${uri} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${branch};rport`, 'Max-Forwards: 70',
    `From: ${res.header('From')}`, `To: ${res.header('To')}`, `Call-ID: ${res.header('Call-ID')}`, `CSeq: ${cseq}`,
    'Content-Length: 0', '', ''].join('\r\n');
}

describe('drachtio-srf proxyRequest through ferry sip: edges', () => {
  let engine: RunningSipEngine;
  let srf: any;
  let handler: Handler = () => {};
  const cleanup: Array<() => unknown> = [];

  before(async () => {
    engine = await startSipEngine({ timers: { t1: 20, t2: 160, t4: 200 } });
    srf = await connectBareSrf(engine.ports.control);
    srf.invite((req: any, res: any) => handler(req, res));
    await routesApplied(srf);
  });

  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  after(async () => {
    killAllSipp();
    try { srf?.disconnect(); } catch { /* already gone */ }
    await engine?.close();
  });

  async function callee(scenario: string, transport: 'udp' | 'tcp'): Promise<{ sipp: SippProcess; port: number; uri: string }> {
    const port = await freePort({ protocols: [transport] });
    const sipp = await startSipp({ scenario, localPort: port, transport, timeoutS: 20 });
    cleanup.push(() => sipp.stop());
    await sipp.ready();
    return { sipp, port, uri: transport === 'tcp' ? `sip:127.0.0.1:${port};transport=tcp` : `127.0.0.1:${port}` };
  }

  async function phone(): Promise<SipUdpPhone> {
    const p = await SipUdpPhone.open(engine.ports.sip);
    cleanup.push(() => p.close());
    return p;
  }

  /** Sends an INVITE to ferry sip and waits for its final response (a non-2xx one is ACKed, as the caller's transaction does). */
  async function call(p: SipUdpPhone, maxForwards = 70): Promise<ReceivedSip> {
    const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
    p.sendRaw(inviteText(p, ids, engine.ports.sip).replace('Max-Forwards: 70', `Max-Forwards: ${maxForwards}`));
    const final = await p.waitFor((m) => /^SIP\/2\.0 [2-6]\d\d/.test(m.startLine) && m.header('Call-ID') === ids.callId);
    if (!final.startLine.startsWith('SIP/2.0 2')) p.sendRaw(inCall(p, 'ACK', final, `sip:service@127.0.0.1:${engine.ports.sip}`, '1 ACK', ids.branch));
    return final;
  }

  async function countsBackToZero(): Promise<void> {
    const counts = () => engine.engine.stats() as unknown as Record<string, number>;
    const keys = ['serverTransactions', 'clientTransactions', 'pending', 'dialogs', 'proxySessions', 'proxyForwards'];
    await waitFor(() => keys.every((k) => counts()[k] === 0), 'engine counts back to zero', 15_000)
      .catch(() => assert.fail(`engine counts not back to zero: ${JSON.stringify(counts())}`));
  }

  test('without remainInDialog ferry sip leaves the dialog: the caller ACKs and BYEs the callee directly', TEST_TIMEOUT, async () => {
    const b = await callee('proxy-uas-answer.xml', 'udp');
    let results: ProxyResults | undefined;
    handler = (req) => { srf.proxyRequest(req, b.uri).then((r: ProxyResults) => { results = r; }); };
    const p = await phone();
    const ok = await call(p);
    assert.match(ok.startLine, /^SIP\/2\.0 200/);
    assert.equal(ok.header('Record-Route'), undefined, 'no Record-Route: ferry sip is not in the dialog');
    const contact = /<([^>]+)>/.exec(ok.header('Contact') ?? '')?.[1] ?? '';
    p.target.port = b.port;
    p.sendRaw(inCall(p, 'ACK', ok, contact, '1 ACK'));
    p.sendRaw(inCall(p, 'BYE', ok, contact, '2 BYE'));
    const r = await b.sipp.done; // SIPp answers the BYE towards the address its call came from (ferry sip): not awaited here
    assert.equal(r.exitCode, 0, describeSipp(r));
    const bye = tracedMessages(r).find((m) => m.direction === 'received' && m.firstLine.startsWith('BYE '));
    assert.match(headerOf(bye!, 'Via') ?? '', new RegExp(`127\\.0\\.0\\.1:${p.port};`), 'the BYE came from the caller itself');
    await waitFor(() => results !== undefined, 'proxyRequest resolves');
    assert.equal(results?.finalStatus, 200);
    await countsBackToZero();
  });

  test('every destination fails: the caller gets the best final response (486 over 503), srf sees both', TEST_TIMEOUT, async () => {
    const unavailable = await callee('proxy-uas-unavailable.xml', 'tcp');
    const busy = await callee('uas-busy.xml', 'tcp');
    let results: ProxyResults | undefined;
    handler = (req) => { srf.proxyRequest(req, [unavailable.uri, busy.uri]).then((r: ProxyResults) => { results = r; }); };
    const final = await call(await phone());
    assert.match(final.startLine, /^SIP\/2\.0 486/);
    await waitFor(() => results !== undefined, 'proxyRequest resolves');
    assert.deepEqual(statuses(results!), [503, 486]);
    assert.equal(results?.connected, false);
    for (const s of [unavailable, busy]) {
      const r = await s.sipp.done;
      assert.equal(r.exitCode, 0, `each destination got the ACK of its final response: ${describeSipp(r)}`);
    }
    await countsBackToZero();
  });

  test('a lone 503 reaches the caller as 500 (it would speak of ferry sip otherwise)', TEST_TIMEOUT, async () => {
    const unavailable = await callee('proxy-uas-unavailable.xml', 'tcp');
    handler = (req) => { srf.proxyRequest(req, unavailable.uri).catch(() => {}); };
    const final = await call(await phone());
    assert.match(final.startLine, /^SIP\/2\.0 500/);
    await countsBackToZero();
  });

  test('a request proxied back to ferry sip itself is refused 482 once it loops; one out of hops 483', TEST_TIMEOUT, async () => {
    let handed = 0;
    const refusals: string[] = [];
    handler = (req) => {
      handed++;
      srf.proxyRequest(req, `sip:127.0.0.1:${engine.ports.sip};transport=tcp`).catch((e: unknown) => refusals.push(String(e)));
    };
    const final = await call(await phone());
    assert.match(final.startLine, /^SIP\/2\.0 482/);
    assert.equal(handed, 3, 'the app saw the INVITE three times: the caller\'s, a spiral with the new Request-URI, then the loop');
    await waitFor(() => refusals.length === 1, 'the looping proxyRequest rejected');
    assert.match(refusals[0], /482 Loop Detected/);
    await countsBackToZero();

    handed = 0;
    const tooFar = await call(await phone(), 1);
    assert.match(tooFar.startLine, /^SIP\/2\.0 483/, 'Max-Forwards 1 is 0 after ferry sip: the next hop (ferry sip again) refuses it');
    assert.equal(handed, 1);
    await countsBackToZero();
  });

  test('an option srf cannot mean is refused with its reason, and the app may still answer the request', TEST_TIMEOUT, async () => {
    const refusals: string[] = [];
    handler = (req, res) => {
      srf.proxyRequest(req, '127.0.0.1:9', { provisionalTimeout: 'soon' }).catch((e: unknown) => {
        refusals.push(String(e));
        res.send(480);
      });
    };
    const final = await call(await phone());
    assert.match(final.startLine, /^SIP\/2\.0 480/, 'the app answered the request itself');
    assert.equal(refusals.length, 1);
    assert.match(refusals[0], /invalid provisionalTimeout 'soon'/);
    await countsBackToZero();
  });
});
