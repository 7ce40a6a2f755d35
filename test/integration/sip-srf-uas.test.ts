/**
 * Acceptance: the real npm drachtio-srf, connected to the SIP server under test, answers a
 * SIPp phone's call with createUAS over UDP and over TCP; SIPp hangs up and srf sees the dialog
 * destroyed. Runs against ferry sip, or a real drachtio-server when DRACHTIO_URL is set.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type Srf from 'drachtio-srf';
import { startSipServerTarget, type SipServerTarget } from '../helpers/sip-engine-process';
import { connectSrf, dialogIdOf, g711Sdp, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { freePort } from '../helpers/free-port';
import { runSipp, killAllSipp, describeSipp, countReceived } from '../helpers/sipp';

interface UasCall {
  protocol: string;
  callId: string;
  dialogId?: string;
  acked: boolean;
  destroyed: boolean;
  error?: string;
}

describe('drachtio-srf createUAS answers a SIPp call', () => {
  let target: SipServerTarget;
  let app: ConnectedSrf;
  const calls: UasCall[] = [];

  before(async () => {
    target = await startSipServerTarget();
    console.log(`sip-srf-uas: ${target.description}`);
    app = await connectSrf(target.control, (srf: Srf) => {
      srf.invite(async (req, res) => {
        const call: UasCall = { protocol: req.protocol, callId: req.get('Call-ID'), acked: false, destroyed: false };
        calls.push(call);
        try {
          const dialog = await srf.createUAS(req, res, { localSdp: g711Sdp(30000) });
          call.dialogId = dialogIdOf(dialog);
          dialog.on('ack', () => (call.acked = true));
          dialog.on('destroy', () => (call.destroyed = true));
        } catch (e) {
          call.error = String(e);
        }
      });
    });
  });

  after(async () => {
    killAllSipp();
    app?.close();
    await target?.stop();
  });

  for (const transport of ['udp', 'tcp'] as const) {
    test(`over ${transport.toUpperCase()}: SIPp calls, srf answers with createUAS, SIPp's BYE destroys the dialog`, { timeout: 120_000 }, async (t) => {
      t.diagnostic(target.description);
      calls.length = 0;
      const result = await runSipp({
        scenario: 'uac-call.xml',
        localPort: await freePort(),
        remote: app.sipAddress(transport),
        transport,
        calls: 1,
        timeoutS: 20,
      });
      assert.equal(result.exitCode, 0, describeSipp(result));
      assert.equal(result.stats?.successfulCalls, 1, describeSipp(result));
      assert.equal(calls.length, 1, 'srf got exactly one INVITE');
      const call = calls[0];
      assert.equal(call.error, undefined);
      assert.equal(call.protocol, transport, 'srf saw the transport the phone used');
      assert.ok(call.dialogId, 'createUAS resolved with a dialog that has the server-assigned id');
      await waitFor(() => call.acked, 'the ACK reaching the dialog');
      await waitFor(() => call.destroyed, "srf's dialog 'destroy' after SIPp's BYE");
      assert.equal(countReceived(result, /^SIP\/2\.0 200/), 2, 'SIPp got one 200 for the INVITE and one for the BYE');
      const dialogs = (app.srf as unknown as { _dialogs: Map<string, unknown> })._dialogs;
      assert.equal(dialogs.size, 0, 'no dialog left in srf');
    });
  }
});
