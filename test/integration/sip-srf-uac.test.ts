/**
 * Acceptance: the real npm drachtio-srf places a call with createUAC to a SIPp phone
 * (through the SIP server under test); the call ends by the app's BYE or by the phone's BYE.
 * Runs against ferry sip, or a real drachtio-server when DRACHTIO_URL is set.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSipServerTarget, type SipServerTarget } from '../helpers/sip-engine-process';
import { connectSrf, destroyDialog, dialogIdOf, g711Sdp, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { freePort } from '../helpers/free-port';
import { startSipp, killAllSipp, describeSipp, countReceived, strayAcks, type SippTransport } from '../helpers/sipp';

describe('drachtio-srf createUAC calls a SIPp phone', () => {
  let target: SipServerTarget;
  let app: ConnectedSrf;

  before(async () => {
    target = await startSipServerTarget();
    console.log(`sip-srf-uac: ${target.description}`);
    app = await connectSrf(target.control);
  });

  after(async () => {
    killAllSipp();
    app?.close();
    await target?.stop();
  });

  function phoneUri(port: number, transport: SippTransport): string {
    return `sip:phone@127.0.0.1:${port}${transport === 'tcp' ? ';transport=tcp' : ''}`;
  }

  function srfDialogCount(): number {
    return (app.srf as unknown as { _dialogs: Map<string, unknown> })._dialogs.size;
  }

  for (const transport of ['udp', 'tcp'] as const) {
    test(`over ${transport.toUpperCase()}: SIPp answers, the app hangs up with dialog.destroy()`, { timeout: 120_000 }, async (t) => {
      t.diagnostic(target.description);
      const port = await freePort();
      const phone = await startSipp({ scenario: 'uas-answer.xml', localPort: port, transport, timeoutS: 20 });
      await phone.ready();
      const provisional: number[] = [];
      const dialog = await app.srf.createUAC(
        phoneUri(port, transport),
        { localSdp: g711Sdp(31000) },
        { cbProvisional: (res) => provisional.push(res.status) },
      );
      assert.ok(dialogIdOf(dialog), 'dialog has the server-assigned id');
      assert.match(dialog.remote.sdp, /m=audio \d+ RTP\/AVP 0/, "the phone's SDP answer reached the app");
      assert.equal(dialog.sip.callId.length > 0, true);
      let destroyedEvent = false;
      dialog.on('destroy', () => (destroyedEvent = true));
      const bye = await destroyDialog(dialog);
      assert.equal(bye.method, 'BYE', 'destroy() sent a BYE');
      const result = await phone.done;
      assert.equal(result.exitCode, 0, describeSipp(result));
      assert.equal(result.stats?.successfulCalls, 1, describeSipp(result));
      assert.equal(countReceived(result, /^ACK /) >= 1, true, 'the phone got the ACK for its 200');
      assert.equal(countReceived(result, /^BYE /) >= 1, true, 'the phone got the BYE');
      assert.equal(destroyedEvent, false, "'destroy' is for the far end's BYE, not ours");
      assert.equal(srfDialogCount(), 0, 'no dialog left in srf');
    });
  }

  test('over UDP: SIPp answers, then the phone hangs up; srf emits destroy', { timeout: 120_000 }, async (t) => {
    t.diagnostic(target.description);
    const port = await freePort();
    const phone = await startSipp({ scenario: 'uas-hangup.xml', localPort: port, transport: 'udp', talkMs: 500, timeoutS: 20 });
    await phone.ready();
    const dialog = await app.srf.createUAC(phoneUri(port, 'udp'), { localSdp: g711Sdp(31002) });
    let destroyed = false;
    dialog.on('destroy', () => (destroyed = true));
    await waitFor(() => destroyed, "srf's 'destroy' after the phone's BYE");
    const result = await phone.done;
    assert.equal(result.exitCode, 0, describeSipp(result));
    assert.equal(result.stats?.successfulCalls, 1, describeSipp(result));
    assert.equal(countReceived(result, /^SIP\/2\.0 200/), 1, 'the phone got the 200 for its BYE');
    assert.equal(srfDialogCount(), 0, 'no dialog left in srf');
  });

  test('over UDP: SIPp answers 486; createUAC rejects with 486 and the phone gets one ACK, in the INVITE transaction', { timeout: 120_000 }, async (t) => {
    t.diagnostic(target.description);
    const port = await freePort();
    const phone = await startSipp({ scenario: 'uas-busy.xml', localPort: port, transport: 'udp', lingerMs: 2500, timeoutS: 20 });
    await phone.ready();
    const status = await app.srf.createUAC(phoneUri(port, 'udp'), { localSdp: g711Sdp(31004) }).then(
      () => 200,
      (e: { status?: number }) => e.status ?? -1,
    );
    assert.equal(status, 486, 'createUAC rejected with the phone\'s 486');
    const result = await phone.done;
    assert.equal(result.exitCode, 0, describeSipp(result));
    assert.ok(countReceived(result, /^ACK /) >= 1, 'the 486 was ACKed');
    // RFC 3261 17.1.1.3: the ACK for a non-2xx belongs to the INVITE transaction (same Call-ID and
    // branch). srf's createUAC also calls ack() for a non-2xx; drachtio-server answers that NOK
    // (already ACKed by the stack) and sends nothing.
    const strays = strayAcks(result);
    assert.deepEqual(strays.map((m) => m.text), [], 'no ACK outside the INVITE transaction reached the phone');
    assert.equal(srfDialogCount(), 0, 'no dialog in srf');
  });
});
