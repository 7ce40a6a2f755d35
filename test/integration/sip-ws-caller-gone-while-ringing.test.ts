/**
 * A webphone calls over a SIP WebSocket and its connection closes while the INVITE has no final response
 * (the tab closed, the browser's network lost): no response can ever reach it (RFC 7118: responses go back
 * over that connection; a WebSocket client takes no new one), so ferry sip ends the INVITE as its CANCEL
 * would — the app gets drachtio-srf's `cancel` event with the Reason, and the transaction is over. Over TCP
 * the same close ends nothing (a response may reach the caller over a new connection, RFC 3261 §18.2.2):
 * the control, and the order of events that shows it (the app answers after the close; its 180 is still
 * accepted by the transaction, i.e. it was not ended).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import type Srf from 'drachtio-srf';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { connectBareSrf, routesApplied } from '../helpers/srf-app';
import { sipToken } from '../helpers/sip-udp-phone';
import { pollUntil } from '../helpers/wait-for';

function invite(transport: 'WS' | 'TCP', port: number, callId: string): string {
  const sdp = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';
  const host = transport === 'WS' ? 'q7t9.invalid' : '127.0.0.1:9';
  return [`INVITE sip:bob@127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/${transport} ${host};branch=z9hG4bK${sipToken()}`, 'Max-Forwards: 70',
    `From: <sip:alice@ferry.local>;tag=${sipToken()}`, '<sip:bob@ferry.local>'.replace(/^/, 'To: '), `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
    `Contact: <sip:k3x9@${host};transport=${transport.toLowerCase()}>`, 'Content-Type: application/sdp', `Content-Length: ${Buffer.byteLength(sdp)}`, '', sdp].join('\r\n');
}

describe("a caller's WebSocket closes while its INVITE rings", { timeout: 60_000 }, () => {
  let engine: SipEngineProcess;
  let srf: any;
  /** per Call-ID: the request the app was handed, whether it saw a cancel and with which Reason */
  const seen = new Map<string, { req: Srf.SrfRequest; res: Srf.SrfResponse; cancelled?: string }>();

  before(async () => {
    engine = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info' });
    srf = await connectBareSrf(engine.ports.control);
    srf.invite((req: Srf.SrfRequest, res: Srf.SrfResponse) => {
      const entry: { req: Srf.SrfRequest; res: Srf.SrfResponse; cancelled?: string } = { req, res };
      seen.set(req.get('Call-ID'), entry);
      req.on('cancel', (cancel: Srf.SipMessage) => {
        entry.cancelled = cancel.get('Reason') ?? '';
      });
      res.send(180); // ringing: the app waits for someone to answer
    });
    await routesApplied(srf);
  });

  after(async () => {
    srf?.disconnect?.();
    await engine?.stop();
  });

  /** A webphone's WebSocket with an INVITE ringing on it (the app's 180 received). */
  async function ringingWebphone(callId: string): Promise<WebSocket> {
    const ws = new WebSocket(`ws://127.0.0.1:${engine.ports.ws}`, 'sip');
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    const got: string[] = [];
    ws.on('message', (d) => got.push(d.toString()));
    ws.send(invite('WS', engine.ports.sip, callId));
    await pollUntil(() => got.some((m) => m.startsWith('SIP/2.0 180')), { timeoutMs: 10_000, what: 'the app\'s 180 reached the webphone' });
    return ws;
  }

  /** The app's final response to `callId`: true when ferry sip took it (the transaction was still open). */
  const appAnswers = (callId: string, status: number): Promise<boolean> =>
    new Promise<boolean>((resolve) => seen.get(callId)!.res.send(status, 'Busy Here', {}, (err: unknown) => resolve(!err)));

  test('WS: the INVITE is ended as a CANCEL would end it, the app told with the Reason', async () => {
    const callId = `ws-gone-${sipToken()}`;
    const ws = await ringingWebphone(callId);
    assert.equal(seen.get(callId)?.cancelled, undefined, 'no cancel while the connection is open');
    ws.terminate(); // as a tab that is gone: no close handshake
    await pollUntil(() => seen.get(callId)?.cancelled !== undefined, { timeoutMs: 10_000, what: 'the app got a cancel for the INVITE' });
    assert.match(seen.get(callId)!.cancelled!, /WebSocket connection closed/);
    assert.match(engine.stderr(), /INVITE ended: the WebSocket connection it came over closed before a final response/);
    assert.equal(await appAnswers(callId, 486), false, 'the app\'s late answer is refused: the transaction is over');
  });

  test('TCP (control): the same close ends nothing; the app still answers the INVITE', async () => {
    const sock = net.connect(engine.ports.sip, '127.0.0.1');
    await new Promise<void>((resolve, reject) => { sock.once('connect', () => resolve()); sock.once('error', reject); });
    let text = '';
    sock.on('data', (d) => (text += d.toString()));
    const callId = `tcp-gone-${sipToken()}`;
    sock.write(invite('TCP', engine.ports.sip, callId));
    await pollUntil(() => /^SIP\/2\.0 180/m.test(text), { timeoutMs: 10_000, what: 'the app\'s 180 reached the TCP phone' });
    sock.destroy();
    // by the time a new connection's INVITE rings, ferry sip has long seen the TCP connection's reset
    const later = `ws-after-${sipToken()}`;
    const ws = await ringingWebphone(later);
    const entry = seen.get(callId)!;
    assert.equal(await appAnswers(callId, 486), true, 'the app\'s final response was taken: the INVITE had not been ended');
    ws.terminate();
    await pollUntil(() => seen.get(later)?.cancelled !== undefined, { timeoutMs: 10_000, what: 'the later webphone\'s INVITE ended with its connection' });
    assert.equal(entry.cancelled, undefined, 'no cancel over TCP');
  });
});
