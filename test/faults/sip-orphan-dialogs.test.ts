/**
 * F7 (docs/lifecycle.md, fault scenarios): a B2BUA app (real drachtio-srf, its own process) bridges
 * two UDP phones through `bin/ferry sip` and is SIGKILLed mid-call. If no app claims or takes over its
 * dialogs within FERRY_SIP_ORPHAN_DIALOG_MS, ferry sip BYEs both phones itself, with a Reason header,
 * and keeps nothing of the call. Control: an app that claims the dialogs in time keeps the call.
 */
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { connectBareSrf, waitFor } from '../helpers/srf-app';
import {
  bridgedCallThroughApp, claimDialog, engineLog, latestStats, requestByDialogId, statsLineCount,
  type ArrivalLog, type DialogSnapshot,
} from '../helpers/sip-b2bua-call';

const ORPHAN_MS = 1500;

describe('F7: orphan dialogs (the app died, nobody adopted its dialogs) are ended by ferry sip', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function callThroughDoomedApp() {
    const { engine, caller, callee, app, ok, bridged } = await bridgedCallThroughApp(cleanup, ORPHAN_MS);
    const killedAt = Date.now();
    await app.kill();
    return { engine, caller, callee, ok, bridged, killedAt };
  }

  function byes(arrivals: ArrivalLog) {
    return arrivals.filter((a) => a.method === 'BYE');
  }

  test('F7: app SIGKILLed mid-call, no app takes over: both phones get BYE with a Reason after the orphan time; 0 dialogs left',
    { timeout: 60_000 }, async (t) => {
      const s = await callThroughDoomedApp();
      await waitFor(() => byes(s.caller.arrivals).length > 0 && byes(s.callee.arrivals).length > 0,
        'a BYE at both phones', ORPHAN_MS + 5_000);
      for (const [name, phone, callId] of [
        ['caller', s.caller, s.ok.header('Call-ID')], ['callee', s.callee, s.bridged.uac.callId],
      ] as const) {
        const bye = byes(phone.arrivals)[0];
        const after = bye.at - s.killedAt;
        t.diagnostic(`${name}: BYE ${after} ms after the app was killed (orphan time ${ORPHAN_MS} ms)`);
        assert.ok(after >= ORPHAN_MS - 5, `${name}: BYE ${after} ms after the kill, not before the orphan time (${ORPHAN_MS} ms)`);
        assert.ok(after <= ORPHAN_MS + 1_000, `${name}: BYE ${after} ms after the kill, within the orphan time + 1 s`);
        assert.equal(bye.message.header('Call-ID'), callId, `${name}: the BYE is inside its call`);
        assert.match(bye.message.header('Reason') ?? '', /^SIP;cause=480;text="no app owns this dialog"$/, `${name}: Reason header`);
      }
      const printed = statsLineCount(s.engine);
      await waitFor(() => statsLineCount(s.engine) > printed + 1, 'fresh engine counts');
      await waitFor(() => {
        const st = latestStats(s.engine);
        return st?.dialogs === 0 && st.orphanedDialogs === 0 && st.heldRequests === 0 && st.pending === 0;
      }, 'the engine holding nothing of the call (dialogs, orphan timers, held requests)', 5_000);
      const ended = engineLog(s.engine, /^orphan dialog ended by ferry sip: BYE sent$/).map((l) => l.callId).sort();
      assert.deepEqual(ended, [s.ok.header('Call-ID'), s.bridged.uac.callId].sort(), 'one log line per ended dialog, with its Call-ID');
      const answered = engineLog(s.engine, /^BYE sent by ferry sip answered$/).map((l) => l.status);
      assert.deepEqual(answered, [200, 200], 'both BYE answers logged');
    });

  test('F7 control: an app that claims both dialogs within the orphan time keeps the call (no BYE from ferry sip); it ends it later',
    { timeout: 60_000 }, async () => {
      const s = await callThroughDoomedApp();
      const appB = await connectBareSrf(s.engine.ports.control);
      cleanup.push(() => { try { appB.disconnect(); } catch { /* already gone */ } });
      const legs: DialogSnapshot[] = [s.bridged.uas, s.bridged.uac];
      const claims = await Promise.all(legs.map((d) => claimDialog(appB, d.dialogId)));
      assert.deepEqual(claims, [200, 200], 'ferry sip answered both claims 200');
      assert.ok(Date.now() - s.killedAt < ORPHAN_MS, 'claimed within the orphan time');
      // the window in which the unclaimed dialogs of the test above were BYEd, plus its 1 s bound
      await waitFor(() => Date.now() >= s.killedAt + ORPHAN_MS + 1_000, 'the orphan time + 1 s to pass', ORPHAN_MS + 5_000);
      assert.equal(byes(s.caller.arrivals).length, 0, 'no BYE to the caller');
      assert.equal(byes(s.callee.arrivals).length, 0, 'no BYE to the callee');
      assert.equal(s.caller.arrivals.some((a) => a.method === 'OPTIONS') || s.callee.arrivals.some((a) => a.method === 'OPTIONS'), false,
        'the claim never went on the wire');
      const st = latestStats(s.engine);
      assert.equal(st?.dialogs, 2, 'both dialogs still in ferry sip');
      assert.equal(st?.orphanedDialogs, 0, 'no orphan timer left');
      // the claimer owns the dialogs: it can end the call, and the phones get its BYEs (no engine Reason)
      const ends = await Promise.all(legs.map((d) => requestByDialogId(appB, 'BYE', d.dialogId)));
      assert.deepEqual(ends, [200, 200]);
      await waitFor(() => byes(s.caller.arrivals).length === 1 && byes(s.callee.arrivals).length === 1, 'the claimer\'s BYEs at both phones');
      assert.equal(byes(s.caller.arrivals)[0].message.header('Reason'), undefined);
      await waitFor(() => latestStats(s.engine)?.dialogs === 0, 'no dialog left');
    });
});
