/**
 * Acceptance: two drachtio-srf apps are connected to ferry sip; app A (its own process)
 * bridges a SIPp caller to a SIPp callee with createB2BUA and is SIGKILLed mid-call. The remaining
 * app B, using ferry's opt-in extension (docs/sip-control-extension.md: `srf.use('bye')` to receive
 * in-dialog requests of orphaned dialogs, `srf.request({stackDialogId})` to send on them):
 *  - receives and answers the caller's BYE, then BYEs the callee on the other leg;
 *  - or, when nobody hangs up, BYEs both legs itself.
 *
 * Runs against ferry sip only: the extension is ferry's. A real drachtio-server answers such a BYE
 * with 481 and refuses requests on another connection's dialog (drachtio-server issue #89).
 */
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type Srf from 'drachtio-srf';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { connectSrf, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { freePorts } from '../helpers/free-port';
import { startSipp, killAllSipp, describeSipp, countReceived } from '../helpers/sipp';
import type { ChildEvent, DialogSnapshot } from '../helpers/srf-b2bua-child';
import { startB2buaChild } from '../helpers/sip-b2bua-call';

const TARGET_NOTE =
  'ran against ferry sip only: the surviving-app extension is ferry sip\'s (a real drachtio-server answers ' +
  'the BYE of a dead app\'s dialog with 481), so DRACHTIO_URL does not apply to this suite';

/**
 * Sends an in-dialog BYE on a dialog this app did not create, by its stored id; resolves with the
 * status. Uses srf.request's callback form: the callback runs while srf handles the server's "sent"
 * answer, so the 'response' listener is in place before the next frame. With the promise form the
 * listener is attached a microtask later, and when the server's answer and the SIP response arrive
 * in one TCP read (a loaded machine, a fast peer) srf emits 'response' before anyone listens.
 */
function byeByDialogId(srf: Srf, dialogId: string): Promise<number> {
  const request = srf.request as unknown as (o: object, cb: (err: Error | null, req: Srf.SrfRequest) => void) => void;
  return new Promise((resolve, reject) => {
    request.call(srf, { uri: 'sip:placeholder', method: 'BYE', stackDialogId: dialogId }, (err, bye) => {
      if (err) return reject(err);
      bye.on('response', (res?: Srf.SrfResponse) => resolve(res?.status ?? -1));
    });
  });
}

describe('two srf apps: the survivor takes over the calls of an app killed mid-call (ferry sip extension)', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    killAllSipp();
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setUp(uacScenario: string, talkMs: number) {
    const engine: SipEngineProcess = await spawnSipEngine();
    cleanup.push(() => engine.stop());
    const [aPort, bPort] = await freePorts(2);
    const callee = await startSipp({ scenario: 'uas-answer.xml', localPort: bPort, timeoutS: 25 });
    await callee.ready();
    const appA = await startB2buaChild(engine.ports.control, `sip:callee@127.0.0.1:${bPort}`);
    cleanup.push(async () => {
      appA.child.kill('SIGKILL');
      await appA.exited;
    });
    const snapshots = new Map<string, { uas: DialogSnapshot; uac: DialogSnapshot }>(); // the gateway's "Redis"
    const byesReceived: Array<{ dialogId: string; knownToSrf: boolean }> = [];
    const byesSent: Array<{ dialogId: string; status: number }> = [];
    const appB: ConnectedSrf = await connectSrf({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' }, (srf) => {
      srf.use('bye', (req: Srf.SrfRequest, res: Srf.SrfResponse) => {
        const dialogId = (req as unknown as { stackDialogId: string }).stackDialogId;
        const knownToSrf = Boolean((srf as unknown as { findDialogById(id: string): unknown }).findDialogById(dialogId));
        byesReceived.push({ dialogId, knownToSrf });
        res.send(200);
        const call = [...snapshots.values()].find((c) => c.uas.dialogId === dialogId || c.uac.dialogId === dialogId);
        if (!call) return;
        const other = call.uas.dialogId === dialogId ? call.uac : call.uas;
        byeByDialogId(srf, other.dialogId).then((status) => byesSent.push({ dialogId: other.dialogId, status }));
      });
    });
    cleanup.push(() => appB.close());
    const caller = await startSipp({
      scenario: uacScenario,
      localPort: aPort,
      remote: `127.0.0.1:${engine.ports.sip}`,
      talkMs,
      timeoutS: 25,
    });
    await waitFor(() => appA.events.some((e) => e.event === 'bridged'), 'app A bridging the call', 15_000);
    const bridged = appA.events.find((e) => e.event === 'bridged') as Extract<ChildEvent, { event: 'bridged' }>;
    snapshots.set(bridged.uas.callId, { uas: bridged.uas, uac: bridged.uac });
    appA.child.kill('SIGKILL');
    await appA.exited;
    return { engine, appA, appB, caller, callee, bridged, byesReceived, byesSent };
  }

  test('the caller hangs up after app A died: app B answers the BYE and BYEs the callee', { timeout: 120_000 }, async (t) => {
    t.diagnostic(TARGET_NOTE);
    const s = await setUp('uac-call.xml', 2500);
    const [ra, rb] = await Promise.all([s.caller.done, s.callee.done]);
    assert.equal(ra.exitCode, 0, `caller: ${describeSipp(ra)}`);
    assert.equal(rb.exitCode, 0, `callee: ${describeSipp(rb)}`);
    assert.equal(ra.stats?.successfulCalls, 1);
    assert.equal(rb.stats?.successfulCalls, 1);
    assert.deepEqual(s.byesReceived, [{ dialogId: s.bridged.uas.dialogId, knownToSrf: false }],
      "app B received the caller's BYE for app A's A-leg dialog");
    await waitFor(() => s.byesSent.length > 0, "app B's BYE on the B leg being answered");
    assert.deepEqual(s.byesSent, [{ dialogId: s.bridged.uac.dialogId, status: 200 }]);
    assert.equal(countReceived(rb, /^BYE /) >= 1, true, 'the callee got the BYE from app B');
    assert.equal(s.appA.events.some((e) => e.event === 'destroyed'), false, 'app A was dead before any BYE');
  });

  test('nobody hangs up after app A died: app B BYEs both legs of the call by their stored dialog ids', { timeout: 120_000 }, async (t) => {
    t.diagnostic(TARGET_NOTE);
    const s = await setUp('uac-await-bye.xml', 300);
    const statuses = await Promise.all([
      byeByDialogId(s.appB.srf, s.bridged.uas.dialogId),
      byeByDialogId(s.appB.srf, s.bridged.uac.dialogId),
    ]);
    assert.deepEqual(statuses, [200, 200], 'both BYEs were answered 200 by the phones');
    const [ra, rb] = await Promise.all([s.caller.done, s.callee.done]);
    assert.equal(ra.exitCode, 0, `caller: ${describeSipp(ra)}`);
    assert.equal(rb.exitCode, 0, `callee: ${describeSipp(rb)}`);
    const byeToCaller = countReceived(ra, /^BYE /);
    assert.equal(byeToCaller >= 1, true, 'the caller got a BYE');
    assert.deepEqual(s.byesReceived, [], 'no request was offered to app B: it sent them');
  });
});
