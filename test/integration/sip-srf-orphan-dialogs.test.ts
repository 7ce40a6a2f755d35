/**
 * ferry sip never leaves a dialog behind (docs/sip-control-extension.md §6-7), with the real npm
 * drachtio-srf and real UDP phones: claiming a dialog with the X-Ferry-Claim OPTIONS, in-dialog
 * requests held while no app can take them (offered to the first app that routes them, or answered by
 * the engine at the orphan deadline), the outgoing INVITE of a dead app cancelled, and the BYEs of a
 * graceful stop. Runs against ferry sip only: these are ferry's extension and engine behaviour.
 */
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSipEngine } from '../helpers/sip-engine-process';
import { connectBareSrf, waitFor } from '../helpers/srf-app';
import {
  answeringPhone, bridgedCallThroughApp, byeFromCaller, claimDialog, engineLog, latestStats, requestByDialogId, startB2buaChild,
  type ArrivalLog,
} from '../helpers/sip-b2bua-call';
import { SipUdpPhone, inviteText, sipToken, TEST_SDP, type ReceivedSip } from '../helpers/sip-udp-phone';

function byes(arrivals: ArrivalLog) {
  return arrivals.filter((a) => a.method === 'BYE');
}

function finalTo(phone: SipUdpPhone, method: string): ReceivedSip[] {
  return phone.received.filter((m) => /^SIP\/2\.0 [2-6]\d\d/.test(m.startLine) && new RegExp(`\\b${method}$`).test(m.header('CSeq') ?? ''));
}

function safeDisconnect(srf: any): void {
  try { srf.disconnect(); } catch { /* already disconnected */ }
}

describe('ferry sip: claimed, held and shut-down dialogs (against ferry sip only)', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  const bridgedCall = (orphanMs: number, options: { calleeIgnoresBye?: boolean } = {}) => bridgedCallThroughApp(cleanup, orphanMs, options);

  test('a claim on a dialog id ferry sip does not know gets 481; a claim moves a live dialog to the claiming app', { timeout: 60_000 }, async () => {
    const s = await bridgedCall(30_000);
    const appB = await connectBareSrf(s.engine.ports.control);
    cleanup.push(() => safeDisconnect(appB));
    const byesAtB: string[] = [];
    appB.use('bye', (req: any, res: any) => {
      byesAtB.push(req.stackDialogId);
      res.send(200);
    });
    assert.equal(await claimDialog(appB, `no-such-call@127.0.0.1;from-tag=${Date.now()}`), 481);
    assert.equal(await claimDialog(appB, s.bridged.uas.dialogId), 200, 'claim of app A\'s live dialog');
    // the caller hangs up: the BYE goes to the claimer, not to app A (which still runs)
    s.caller.phone.sendRaw(byeFromCaller(s.caller.phone, s.ok, s.engine.ports.sip));
    await waitFor(() => finalTo(s.caller.phone, 'BYE').length > 0, 'the answer to the caller\'s BYE');
    assert.equal(finalTo(s.caller.phone, 'BYE')[0].startLine, 'SIP/2.0 200 OK');
    assert.deepEqual(byesAtB, [s.bridged.uas.dialogId], 'the claiming app received the BYE');
    assert.equal(s.app.events.some((e) => e.event === 'destroyed'), false, 'app A was not told: it no longer owns the dialog');
    assert.equal(s.caller.arrivals.some((a) => a.method === 'OPTIONS'), false, 'the claim never went on the wire');
    assert.deepEqual(engineLog(s.engine, /^dialog claimed by app$/).map((l) => l.callId), [s.ok.header('Call-ID')]);
  });

  test('a BYE held while no app is connected is offered to an app that connects 1 s later: the phone gets its 200, never 481',
    { timeout: 60_000 }, async () => {
      const orphanMs = 6_000;
      const s = await bridgedCall(orphanMs);
      const killedAt = Date.now();
      await s.app.kill();
      s.caller.phone.sendRaw(byeFromCaller(s.caller.phone, s.ok, s.engine.ports.sip));
      await waitFor(() => engineLog(s.engine, /^in-dialog request held/).length === 1, 'ferry sip holding the BYE');
      const heldAt = Date.now();
      await waitFor(() => Date.now() >= heldAt + 1_000, 'one second with no app connected', 5_000);
      assert.equal(finalTo(s.caller.phone, 'BYE').length, 0, 'the held BYE was not answered while no app was connected');
      const received: Array<{ dialogId: string; at: number }> = [];
      const appB = await connectBareSrf(s.engine.ports.control);
      cleanup.push(() => safeDisconnect(appB));
      appB.use('bye', (req: any, res: any) => {
        received.push({ dialogId: req.stackDialogId, at: Date.now() });
        res.send(200);
        // the app ends the other leg of the call, as the gateway does
        void requestByDialogId(appB, 'BYE', s.bridged.uac.dialogId);
      });
      await waitFor(() => finalTo(s.caller.phone, 'BYE').length > 0, 'the answer to the caller\'s BYE', 10_000);
      assert.deepEqual(finalTo(s.caller.phone, 'BYE').map((m) => m.startLine), ['SIP/2.0 200 OK'], 'one final answer: 200');
      assert.equal(s.caller.phone.count((m) => m.startLine.startsWith('SIP/2.0 481')), 0, 'never 481');
      assert.deepEqual(received.map((r) => r.dialogId), [s.bridged.uas.dialogId], 'the BYE reached the new app');
      assert.ok(received[0].at < killedAt + orphanMs, 'offered before the orphan deadline, not answered by it');
      await waitFor(() => byes(s.callee.arrivals).length === 1, 'the new app\'s BYE at the callee');
      assert.equal(byes(s.callee.arrivals)[0].message.header('Reason'), undefined, 'the callee\'s BYE came from the app, not the engine');
      await waitFor(() => { const st = latestStats(s.engine); return st?.dialogs === 0 && st.orphanedDialogs === 0 && st.heldRequests === 0; },
        'no dialog, orphan timer or held request left');
    });

  test('a re-INVITE held for an orphaned dialog goes to the app that claims the dialog, at the claim', { timeout: 60_000 }, async () => {
    const s = await bridgedCall(6_000);
    await s.app.kill();
    const ok = s.ok;
    s.caller.phone.sendRaw([`INVITE sip:service@127.0.0.1:${s.engine.ports.sip} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${s.caller.phone.port};branch=z9hG4bK${sipToken()};rport`, 'Max-Forwards: 70',
      `From: ${ok.header('From')}`, `To: ${ok.header('To')}`, `Call-ID: ${ok.header('Call-ID')}`, 'CSeq: 2 INVITE',
      `Contact: <sip:phone@127.0.0.1:${s.caller.phone.port}>`, 'Content-Type: application/sdp',
      `Content-Length: ${Buffer.byteLength(TEST_SDP)}`, '', TEST_SDP].join('\r\n'));
    await waitFor(() => engineLog(s.engine, /^in-dialog request held/).length === 1, 'ferry sip holding the re-INVITE');
    const appB = await connectBareSrf(s.engine.ports.control); // routes nothing: only a claim gives it the dialog
    cleanup.push(() => safeDisconnect(appB));
    const offered: string[] = [];
    appB.use((req: any, res: any) => {
      offered.push(`${req.method} ${req.stackDialogId}`);
      res.send(200, { body: TEST_SDP });
    });
    assert.equal(finalTo(s.caller.phone, 'INVITE').filter((m) => /^2 /.test(m.header('CSeq') ?? '')).length, 0,
      'the re-INVITE is still held while the new app has not claimed the dialog');
    assert.equal(await claimDialog(appB, s.bridged.uas.dialogId), 200);
    await waitFor(() => s.caller.phone.count((m) => m.startLine.startsWith('SIP/2.0 200') && m.header('CSeq') === '2 INVITE') > 0,
      'the claimer\'s 200 to the re-INVITE at the caller');
    assert.deepEqual(offered, [`INVITE ${s.bridged.uas.dialogId}`]);
    assert.equal(s.caller.phone.count((m) => m.startLine.startsWith('SIP/2.0 481')), 0, 'never 481');
    await waitFor(() => latestStats(s.engine)?.orphanedDialogs === 1, 'only the unclaimed callee leg still orphaned (its deadline runs)');
  });

  test('a BYE held with no app until the orphan deadline is answered 200 by ferry sip, and the other leg is BYEd', { timeout: 60_000 }, async () => {
    const orphanMs = 1_500;
    const s = await bridgedCall(orphanMs);
    const killedAt = Date.now();
    await s.app.kill();
    s.caller.phone.sendRaw(byeFromCaller(s.caller.phone, s.ok, s.engine.ports.sip));
    await waitFor(() => finalTo(s.caller.phone, 'BYE').length > 0 && byes(s.callee.arrivals).length > 0,
      'the caller\'s BYE answered and the callee BYEd', orphanMs + 5_000);
    const answer = finalTo(s.caller.phone, 'BYE');
    assert.deepEqual(answer.map((m) => m.startLine), ['SIP/2.0 200 OK']);
    assert.equal(s.caller.phone.count((m) => m.startLine.startsWith('SIP/2.0 481')), 0, 'never 481');
    const calleeBye = byes(s.callee.arrivals)[0];
    assert.ok(calleeBye.at - killedAt >= orphanMs - 5 && calleeBye.at - killedAt <= orphanMs + 1_000,
      `callee BYEd ${calleeBye.at - killedAt} ms after the kill (orphan time ${orphanMs} ms)`);
    assert.match(calleeBye.message.header('Reason') ?? '', /no app owns this dialog/);
    assert.equal(byes(s.caller.arrivals).length, 0, 'the caller hung up itself: no BYE to it');
    assert.deepEqual(engineLog(s.engine, /^orphan dialog ended: the peer hung up$/).map((l) => l.callId), [s.ok.header('Call-ID')]);
    await waitFor(() => { const st = latestStats(s.engine); return st?.dialogs === 0 && st.orphanedDialogs === 0 && st.heldRequests === 0; },
      'no dialog, orphan timer or held request left');
  });

  for (const ending of ['487', '200'] as const) {
    const what = ending === '487'
      ? 'the callee ends it 487, ferry sip ACKs that'
      : 'a 200 that crosses the CANCEL is ACKed and BYEd (Reason) by ferry sip';
    test(`the outgoing INVITE of an app that dies while it rings is cancelled (Reason), the caller gets 503; ${what}`,
      { timeout: 60_000 }, async () => {
        const engine = await spawnSipEngine({ FERRY_SIP_STATS_INTERVAL_MS: '100', FERRY_LOG_LEVEL: 'info' });
        cleanup.push(() => engine.stop());
        const caller = await answeringPhone(engine.ports.sip);
        const callee = await answeringPhone(engine.ports.sip, { ringOnly: true });
        cleanup.push(() => { caller.phone.close(); callee.phone.close(); });
        const app = await startB2buaChild(engine.ports.control, `sip:callee@127.0.0.1:${callee.phone.port}`);
        cleanup.push(() => app.kill());
        caller.phone.sendRaw(inviteText(caller.phone, { callId: sipToken(), fromTag: sipToken(), branch: sipToken() }, engine.ports.sip));
        await waitFor(() => callee.arrivals.some((a) => a.method === 'INVITE'), 'the app\'s INVITE ringing the callee', 15_000);
        await waitFor(() => caller.phone.count((m) => m.startLine.startsWith('SIP/2.0 180')) > 0, 'the ringing relayed to the caller');
        await app.kill();
        await waitFor(() => callee.arrivals.some((a) => a.method === 'CANCEL'), 'a CANCEL at the callee');
        const cancel = callee.arrivals.find((a) => a.method === 'CANCEL')!.message;
        assert.match(cancel.header('Reason') ?? '', /the app that placed this call is gone/);
        const invite = callee.arrivals.find((a) => a.method === 'INVITE')!.message;
        assert.equal(cancel.header('Call-ID'), invite.header('Call-ID'));
        await waitFor(() => finalTo(caller.phone, 'INVITE').length > 0, 'the caller\'s INVITE answered');
        assert.match(finalTo(caller.phone, 'INVITE')[0].startLine, /^SIP\/2\.0 503/);
        const final = ending === '487' ? 'SIP/2.0 487 Request Terminated' : 'SIP/2.0 200 OK';
        const body = ending === '200' ? TEST_SDP : '';
        callee.phone.sendRaw([final, `Via: ${invite.header('Via')}`, `From: ${invite.header('From')}`,
          `To: ${invite.header('To')};tag=ringing`, `Call-ID: ${invite.header('Call-ID')}`, `CSeq: ${invite.header('CSeq')}`,
          `Contact: <sip:phone@127.0.0.1:${callee.phone.port}>`, ...(body ? ['Content-Type: application/sdp'] : []),
          `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n'));
        await waitFor(() => callee.arrivals.some((a) => a.method === 'ACK'), `ferry sip ACKing the ${ending}`);
        if (ending === '200') {
          await waitFor(() => byes(callee.arrivals).length > 0, 'ferry sip\'s BYE of the answered call');
          const bye = byes(callee.arrivals)[0].message;
          assert.equal(bye.header('Call-ID'), invite.header('Call-ID'));
          assert.match(bye.header('Reason') ?? '', /the app that placed this call is gone/);
        } else {
          assert.equal(byes(callee.arrivals).length, 0, 'no BYE for a call that was never answered');
        }
        await waitFor(() => { const st = latestStats(engine); return st?.dialogs === 0 && st.pending === 0 && st.orphanedDialogs === 0; },
          'no dialog, orphan timer or pending request left');
      });
  }

  test('graceful stop (SIGTERM): ferry sip BYEs both legs with a Reason, then exits', { timeout: 60_000 }, async (t) => {
    const s = await bridgedCall(30_000);
    const exited = new Promise<void>((resolve) => s.engine.child.once('exit', () => resolve()));
    const stoppedAt = Date.now();
    s.engine.child.kill('SIGTERM');
    await exited;
    const exitMs = Date.now() - stoppedAt;
    t.diagnostic(`ferry sip exited ${exitMs} ms after SIGTERM`);
    for (const [name, phone] of [['caller', s.caller], ['callee', s.callee]] as const) {
      assert.equal(byes(phone.arrivals).length >= 1, true, `${name} got a BYE`);
      assert.match(byes(phone.arrivals)[0].message.header('Reason') ?? '', /^SIP;cause=503;text="ferry sip is shutting down"$/);
    }
    assert.equal(byes(s.caller.arrivals)[0].message.header('Call-ID'), s.ok.header('Call-ID'));
    assert.equal(byes(s.callee.arrivals)[0].message.header('Call-ID'), s.bridged.uac.callId);
    const [summary] = engineLog(s.engine, /^ferry sip stopping: dialogs ended$/);
    assert.deepEqual({ byes: summary?.byes, answered: summary?.answered }, { byes: 2, answered: 2 });
  });

  test('graceful stop waits at most 1 s for BYE answers: a callee that never answers does not hold ferry sip', { timeout: 60_000 }, async (t) => {
    const s = await bridgedCall(30_000, { calleeIgnoresBye: true });
    const exited = new Promise<void>((resolve) => s.engine.child.once('exit', () => resolve()));
    s.engine.child.kill('SIGTERM');
    await exited;
    const [summary] = engineLog(s.engine, /^ferry sip stopping: dialogs ended$/);
    t.diagnostic(`shutdown summary: ${JSON.stringify(summary)}`);
    assert.deepEqual({ byes: summary?.byes, answered: summary?.answered }, { byes: 2, answered: 1 }, 'the caller answered, the callee did not');
    assert.ok(Number(summary.waitedMs) >= 990 && Number(summary.waitedMs) <= 1_400, `waited ${summary.waitedMs} ms for the answers`);
    assert.equal(byes(s.callee.arrivals).length >= 1, true, 'the silent callee was sent the BYE all the same');
  });
});
