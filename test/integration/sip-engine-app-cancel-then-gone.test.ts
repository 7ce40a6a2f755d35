/**
 * An app that CANCELs its outgoing INVITE and disconnects at once (drachtio-srf's createB2BUA does so when
 * the caller cancels and the app then leaves; drachtio-srf's own b2b.js "CANCEL from A" case): the callee
 * gets that one CANCEL. ferry sip does not send a second CANCEL of its own for the gone app: two CANCELs
 * with the INVITE's branch are two transactions the callee cannot tell apart (SIPp aborts the call on the
 * second and never answers the INVITE 487), and the one whose 200 is taken by the other retransmits for
 * 64*T1. A peer that never answers is still cancelled by ferry sip once the app is gone (control).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type Srf from 'drachtio-srf';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { connectSrf, type ConnectedSrf } from '../helpers/srf-app';
import { SipUdpPhone, sipToken, type ReceivedSip } from '../helpers/sip-udp-phone';
import { pollUntil } from '../helpers/wait-for';

/** A response to `req` (Via, From, To with `toTag`, Call-ID, CSeq copied). */
function responseTo(req: ReceivedSip, status: string, toTag: string): string {
  const lines = req.text.split('\r\n\r\n')[0]!.split('\r\n').slice(1);
  const copy = (name: string) => lines.filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  const to = copy('To').map((l) => (/;tag=/.test(l) ? l : `${l};tag=${toTag}`));
  return [`SIP/2.0 ${status}`, ...copy('Via'), ...copy('From'), ...to, ...copy('Call-ID'), ...copy('CSeq'), 'Content-Length: 0', '', ''].join('\r\n');
}

describe('an app that CANCELs its INVITE and leaves', () => {
  let engine: SipEngineProcess;
  let callee: SipUdpPhone;
  const apps: ConnectedSrf[] = [];

  before(async () => {
    engine = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info' });
    callee = new SipUdpPhone();
    await callee.start();
    const toTag = sipToken();
    callee.autoAnswer = (m) => (m.startLine.startsWith('INVITE ') ? responseTo(m, '180 Ringing', toTag) : undefined);
  });

  after(async () => {
    for (const a of apps) a.close();
    callee?.close();
    await engine?.stop();
  });

  const appsGone = () => (engine.stderr().match(/"message":"app gone"/g) ?? []).length;

  /** The app places a call to the callee and, on its 180, runs `onRinging`; resolves with the INVITE's Call-ID. */
  async function placeCall(onRinging: (invite: Srf.SrfRequest, app: ConnectedSrf) => void): Promise<string> {
    const app = await connectSrf({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' });
    apps.push(app);
    const callId = `cancel-gone-${sipToken()}`;
    let invite: Srf.SrfRequest | undefined;
    app.srf
      .createUAC(
        `sip:callee@127.0.0.1:${callee.port}`,
        { headers: { 'Call-ID': callId, From: 'sip:caller@example.com', To: 'sip:callee@example.com' } },
        {
          // drachtio-srf calls cbRequest(err, req) (its typings name only req)
          cbRequest: ((_err: unknown, req: Srf.SrfRequest) => {
            invite = req;
          }) as unknown as (req: Srf.SrfRequest) => void,
          cbProvisional: (res: Srf.SrfResponse) => {
            if (res.status === 180 && invite) onRinging(invite, app);
          },
        },
      )
      .catch(() => {}); // the app is gone before the INVITE's final response
    return callId;
  }

  const cancelsOf = (callId: string) => callee.received.filter((m) => m.startLine.startsWith('CANCEL ') && m.header('Call-ID') === callId);

  test('the callee gets the app\'s CANCEL only, and its 487 is ACKed', { timeout: 30_000 }, async () => {
    const goneBefore = appsGone();
    const callId = await placeCall((invite, app) => {
      (invite as unknown as { cancel(opts: { headers: Record<string, string> }): void }).cancel({
        headers: { Reason: 'SIP;cause=200;text="Call completed elsewhere"' },
      });
      app.close(); // in the same turn: the CANCEL and the close reach ferry sip back to back
    });
    const first = await callee.waitFor((m) => m.startLine.startsWith('CANCEL ') && m.header('Call-ID') === callId);
    assert.match(first.header('Reason') ?? '', /Call completed elsewhere/, "the first CANCEL is the app's");
    // ferry sip has handled the close (a CANCEL of its own for the gone app would be on the wire by now)
    await pollUntil(() => appsGone() > goneBefore, { timeoutMs: 10_000, what: 'ferry sip logging the app gone' });
    // answer now: the INVITE's 487 is ACKed by ferry sip, after any CANCEL it sent (one socket, in order)
    const invite = callee.received.find((m) => m.startLine.startsWith('INVITE ') && m.header('Call-ID') === callId)!;
    for (const c of cancelsOf(callId)) callee.socket.send(responseTo(c, '200 OK', 'x'), engine.ports.sip, '127.0.0.1');
    callee.socket.send(responseTo(invite, '487 Request Terminated', 'x'), engine.ports.sip, '127.0.0.1');
    await callee.waitFor((m) => m.startLine.startsWith('ACK ') && m.header('Call-ID') === callId);
    assert.deepEqual(cancelsOf(callId).map((c) => c.header('Reason')), ['SIP;cause=200;text="Call completed elsewhere"'], 'one CANCEL, the app\'s');
  });

  test('control: an app that leaves without cancelling gets its ringing INVITE cancelled by ferry sip', { timeout: 30_000 }, async () => {
    const goneBefore = appsGone();
    const callId = await placeCall((_invite, app) => app.close());
    await pollUntil(() => appsGone() > goneBefore, { timeoutMs: 10_000, what: 'ferry sip logging the app gone' });
    const cancel = await callee.waitFor((m) => m.startLine.startsWith('CANCEL ') && m.header('Call-ID') === callId);
    assert.match(cancel.header('Reason') ?? '', /the app that placed this call is gone/);
    const invite = callee.received.find((m) => m.startLine.startsWith('INVITE ') && m.header('Call-ID') === callId)!;
    callee.socket.send(responseTo(cancel, '200 OK', 'x'), engine.ports.sip, '127.0.0.1');
    callee.socket.send(responseTo(invite, '487 Request Terminated', 'x'), engine.ports.sip, '127.0.0.1');
    await callee.waitFor((m) => m.startLine.startsWith('ACK ') && m.header('Call-ID') === callId);
    assert.equal(cancelsOf(callId).length, 1);
  });
});
