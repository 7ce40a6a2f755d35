/**
 * Acceptance: a drachtio-srf createB2BUA app bridges a SIPp caller (A) to a SIPp callee (B)
 * through the SIP server under test: BYE from either side, CANCEL while B rings, and a hold
 * re-INVITE (a=sendonly) passed across. Runs against ferry sip, or a real drachtio-server when
 * DRACHTIO_URL is set.
 */
import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type Srf from 'drachtio-srf';
import { startSipServerTarget, type SipServerTarget } from '../helpers/sip-engine-process';
import { connectSrf, destroyDialog, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { freePorts } from '../helpers/free-port';
import { startSipp, killAllSipp, describeSipp, countReceived, strayAcks, type SippTransport, type SippResult } from '../helpers/sipp';

interface BridgedCall {
  callId: string;
  connected: boolean;
  cancelledByA: boolean;
  failureStatus?: number;
  /** Which leg's far end hung up first. */
  hungUpBy?: 'A' | 'B';
  /** The app's BYE on the other leg completed. */
  otherLegReleased: boolean;
  /** re-INVITEs seen on each leg, with the direction attribute they carried. */
  modifies: string[];
}

describe('drachtio-srf createB2BUA bridges two SIPp phones', () => {
  let target: SipServerTarget;
  let app: ConnectedSrf;
  let bLegUri = '';
  const calls: BridgedCall[] = [];

  before(async () => {
    target = await startSipServerTarget();
    console.log(`sip-srf-b2bua: ${target.description}`);
    app = await connectSrf(target.control, (srf: Srf) => {
      srf.invite(async (req, res) => {
        const call: BridgedCall = {
          callId: req.get('Call-ID'),
          connected: false,
          cancelledByA: false,
          otherLegReleased: false,
          modifies: [],
        };
        calls.push(call);
        req.on('cancel', () => (call.cancelledByA = true));
        try {
          const { uas, uac } = await srf.createB2BUA(req, res, bLegUri, { localSdpB: req.body });
          call.connected = true;
          const bridge = (from: Srf.Dialog, to: Srf.Dialog, leg: 'A' | 'B') => {
            from.on('destroy', () => {
              call.hungUpBy ??= leg;
              destroyDialog(to).then(() => (call.otherLegReleased = true), () => {});
            });
            from.on('modify', async (mreq, mres) => {
              call.modifies.push(`${leg}:${/a=(sendonly|recvonly|inactive|sendrecv)/.exec(mreq.body)?.[1] ?? 'none'}`);
              try {
                const answer = await to.modify(mreq.body);
                mres.send(200, { body: answer });
              } catch (e) {
                mres.send((e as { status?: number }).status ?? 500);
              }
            });
          };
          bridge(uas, uac, 'A');
          bridge(uac, uas, 'B');
        } catch (e) {
          call.failureStatus = (e as { status?: number }).status ?? -1;
        }
      });
    });
  });

  after(async () => {
    killAllSipp();
    app?.close();
    await target?.stop();
  });

  beforeEach(() => {
    calls.length = 0;
  });

  function srfDialogCount(): number {
    return (app.srf as unknown as { _dialogs: Map<string, unknown> })._dialogs.size;
  }

  /** Starts B (SIPp UAS), points the app's B leg at it, runs A (SIPp UAC) and returns both results. */
  async function bridge(
    uacScenario: string,
    uasScenario: string,
    transport: SippTransport = 'udp',
    talkMs = 300,
  ): Promise<{ a: SippResult; b: SippResult }> {
    const [aPort, bPort] = await freePorts(2);
    const b = await startSipp({ scenario: uasScenario, localPort: bPort, transport, talkMs, timeoutS: 20 });
    await b.ready();
    bLegUri = `sip:callee@127.0.0.1:${bPort}${transport === 'tcp' ? ';transport=tcp' : ''}`;
    const a = await startSipp({
      scenario: uacScenario,
      localPort: aPort,
      remote: app.sipAddress(transport),
      transport,
      talkMs,
      timeoutS: 20,
    });
    const [ra, rb] = await Promise.all([a.done, b.done]);
    return { a: ra, b: rb };
  }

  function assertBothSucceeded(r: { a: SippResult; b: SippResult }): void {
    assert.equal(r.a.exitCode, 0, `caller A: ${describeSipp(r.a)}`);
    assert.equal(r.b.exitCode, 0, `callee B: ${describeSipp(r.b)}`);
    assert.equal(r.a.stats?.successfulCalls, 1, describeSipp(r.a));
    assert.equal(r.b.stats?.successfulCalls, 1, describeSipp(r.b));
  }

  for (const transport of ['udp', 'tcp'] as const) {
    test(`over ${transport.toUpperCase()}: A hangs up, the app's BYE releases B`, { timeout: 120_000 }, async (t) => {
      t.diagnostic(target.description);
      const r = await bridge('uac-call.xml', 'uas-answer.xml', transport);
      assertBothSucceeded(r);
      assert.equal(calls.length, 1);
      const call = calls[0];
      assert.equal(call.connected, true, `bridged (failure ${call.failureStatus})`);
      await waitFor(() => call.otherLegReleased, "the app's BYE to B being answered");
      assert.equal(call.hungUpBy, 'A');
      assert.equal(countReceived(r.b, /^BYE /) >= 1, true, 'B got a BYE');
      assert.equal(srfDialogCount(), 0, 'no dialog left in srf');
    });
  }

  test('over UDP: B hangs up, the app\'s BYE releases A', { timeout: 120_000 }, async (t) => {
    t.diagnostic(target.description);
    const r = await bridge('uac-await-bye.xml', 'uas-hangup.xml', 'udp', 500);
    assertBothSucceeded(r);
    const call = calls[0];
    assert.equal(call.connected, true, `bridged (failure ${call.failureStatus})`);
    await waitFor(() => call.otherLegReleased, "the app's BYE to A being answered");
    assert.equal(call.hungUpBy, 'B');
    assert.equal(countReceived(r.a, /^BYE /) >= 1, true, 'A got a BYE');
    assert.equal(srfDialogCount(), 0, 'no dialog left in srf');
  });

  test('over UDP: A cancels while B rings; A gets 487, the CANCEL reaches B, the app sees cancel and 487', { timeout: 120_000 }, async (t) => {
    t.diagnostic(target.description);
    const r = await bridge('uac-cancel.xml', 'uas-ring-cancelled.xml', 'udp');
    assertBothSucceeded(r);
    assert.equal(countReceived(r.a, /^SIP\/2\.0 180/) >= 1, true, "B's 180 was passed to A");
    assert.equal(countReceived(r.a, /^SIP\/2\.0 487/) >= 1, true, 'A got 487 Request Terminated');
    assert.equal(countReceived(r.b, /^CANCEL /) >= 1, true, 'B got the CANCEL');
    assert.equal(countReceived(r.b, /^ACK /) >= 1, true, "B's 487 was ACKed");
    assert.deepEqual(strayAcks(r.b).map((m) => m.text), [], "B got no ACK outside its INVITE transaction (srf's ack() of the 487 must not go out)");
    const call = calls[0];
    await waitFor(() => call.failureStatus !== undefined, 'createB2BUA to settle');
    assert.equal(call.cancelledByA, true, "srf emitted 'cancel' on the A-leg request");
    assert.equal(call.failureStatus, 487);
    assert.equal(call.connected, false);
    assert.equal(srfDialogCount(), 0, 'no dialog left in srf');
  });

  test('over UDP: A puts the call on hold (re-INVITE a=sendonly); the app passes it to B and B\'s recvonly back', { timeout: 120_000 }, async (t) => {
    t.diagnostic(target.description);
    const r = await bridge('uac-hold.xml', 'uas-hold.xml', 'udp');
    assertBothSucceeded(r);
    const call = calls[0];
    assert.deepEqual(call.modifies, ['A:sendonly'], 'the app saw one re-INVITE from A, offering sendonly');
    assert.equal(countReceived(r.b, /^INVITE /), 2, 'B got the initial INVITE and the hold re-INVITE');
    assert.equal(countReceived(r.b, /^ACK /) >= 2, true, 'B got an ACK for each 200');
    await waitFor(() => call.otherLegReleased, "the app's BYE to B being answered");
    assert.equal(srfDialogCount(), 0, 'no dialog left in srf');
  });
});
