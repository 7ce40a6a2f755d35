/**
 * Acceptance: an ACK that never comes. A SIPp caller does not ACK the 200 that a
 * drachtio-srf createB2BUA app sent through the SIP server under test. The server retransmits the
 * 200 (timer G), gives up at timer H and sends the BYE itself, reporting it to the app as an
 * "unsolicited" BYE: srf destroys the A-leg dialog, and the app releases B.
 *
 * Against ferry sip the RFC 3261 timers are shortened (T1 = 50 ms, so timer H = 64*T1 = 3.2 s);
 * against a real drachtio-server (DRACHTIO_URL) its own T1 applies and H is 32 s.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type Srf from 'drachtio-srf';
import { startSipServerTarget, type SipServerTarget } from '../helpers/sip-engine-process';
import { connectSrf, destroyDialog, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { freePorts } from '../helpers/free-port';
import { startSipp, killAllSipp, describeSipp, countReceived } from '../helpers/sipp';

const T1_MS = 50;

describe('ACK timeout: the server retransmits the 200, then BYEs the caller and tells srf', () => {
  let target: SipServerTarget;
  let app: ConnectedSrf;
  let bLegUri = '';
  const events: string[] = [];
  let bReleased = false;

  before(async () => {
    target = await startSipServerTarget({ FERRY_SIP_T1_MS: String(T1_MS), FERRY_SIP_T2_MS: '400', FERRY_SIP_T4_MS: '500' });
    console.log(`sip-srf-ack-timeout: ${target.description}`);
    app = await connectSrf(target.control, (srf: Srf) => {
      srf.invite(async (req, res) => {
        try {
          const { uas, uac } = await srf.createB2BUA(req, res, bLegUri, { localSdpB: req.body });
          events.push('bridged');
          uas.on('ack', () => events.push('A:ack'));
          uas.on('destroy', (bye: Srf.SrfRequest) => {
            events.push(`A:destroy:${(bye as unknown as { meta?: { source?: string } }).meta?.source ?? '?'}`);
            destroyDialog(uac).then(() => (bReleased = true), () => {});
          });
          uac.on('destroy', () => events.push('B:destroy'));
        } catch (e) {
          events.push(`failed:${(e as { status?: number }).status}`);
        }
      });
    });
  });

  after(async () => {
    killAllSipp();
    app?.close();
    await target?.stop();
  });

  test('caller never ACKs: 200 retransmitted, server BYE to the caller, srf destroy, B released', { timeout: 120_000 }, async (t) => {
    t.diagnostic(target.description);
    const realServer = target.kind === 'drachtio-server';
    const timeoutS = realServer ? 60 : 20;
    const [aPort, bPort] = await freePorts(2);
    const b = await startSipp({ scenario: 'uas-answer.xml', localPort: bPort, timeoutS });
    await b.ready();
    bLegUri = `sip:callee@127.0.0.1:${bPort}`;
    const started = Date.now();
    const a = await startSipp({ scenario: 'uac-no-ack.xml', localPort: aPort, remote: app.sipAddress('udp'), timeoutS });
    const [ra, rb] = await Promise.all([a.done, b.done]);
    const elapsed = Date.now() - started;
    assert.equal(ra.exitCode, 0, `caller A: ${describeSipp(ra)}`);
    assert.equal(rb.exitCode, 0, `callee B: ${describeSipp(rb)}`);
    assert.equal(countReceived(ra, /^ACK /), 0);
    const okCount = countReceived(ra, /^SIP\/2\.0 200/);
    assert.ok(okCount >= 3, `the 200 was retransmitted while no ACK came (A saw ${okCount} copies)`);
    assert.equal(countReceived(ra, /^BYE /) >= 1, true, 'the server sent A a BYE');
    if (!realServer) {
      assert.ok(elapsed >= 64 * T1_MS * 0.9, `BYE came after timer H (64*T1), not earlier (${elapsed} ms)`);
    }
    await waitFor(() => bReleased, "the app's BYE to B being answered");
    assert.deepEqual(events.filter((e) => e !== 'B:destroy'), ['bridged', 'A:destroy:application'],
      "srf saw the A-leg destroyed by the server's (unsolicited) BYE and never an ACK");
    assert.equal(countReceived(rb, /^BYE /) >= 1, true, 'B got the BYE');
    assert.equal((app.srf as unknown as { _dialogs: Map<string, unknown> })._dialogs.size, 0, 'no dialog left in srf');
  });
});
