/**
 * Every transaction, pending request and dialog of ferry sip is released when calls end (the engine
 * runs on a FakeClock, so Timer J/K/L/M at the default T1 run out as the test advances it), and a
 * dialog whose app died stays until the orphan deadline (a BYE no app takes is held until then, and
 * answered exactly when the fake clock reaches it).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { DEFAULT_TIMERS } from '../../src/sip/transaction/timer-config';
import { SipUdpPhone, inviteText, sipToken, TEST_SDP, type ReceivedSip } from '../helpers/sip-udp-phone';
import { connectBareSrf as connect, routesApplied } from '../helpers/srf-app';
import { pollUntil } from '../helpers/wait-for';

const ORPHAN_MS = 60_000; // longer than 64*T1, so Timer J/H run out while the dialog is orphaned
const T1 = DEFAULT_TIMERS.t1;
const ZERO = { serverTransactions: 0, clientTransactions: 0, pending: 0, dialogs: 0, bindings: 0, orphanedDialogs: 0, heldRequests: 0, proxySessions: 0, proxyForwards: 0 };

function req(phone: SipUdpPhone, method: string, ok: ReceivedSip, cseq: number): string {
  return [`${method} sip:service@127.0.0.1 SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()};rport`,
    'Max-Forwards: 70', `From: ${ok.header('From')}`, `To: ${ok.header('To')}`, `Call-ID: ${ok.header('Call-ID')}`,
    `CSeq: ${method === 'ACK' ? 1 : cseq} ${method}`, 'Content-Length: 0', '', ''].join('\r\n');
}

describe('ferry sip resources return to zero', { timeout: 30_000 }, () => {
  let engine: RunningSipEngine;
  let clock: FakeClock;
  before(async () => {
    clock = new FakeClock();
    engine = await startSipEngine({ clock, orphanDialogMs: ORPHAN_MS });
  });
  after(async () => {
    await engine.close();
  });

  test('five calls answered by srf and hung up by the phone leave no transaction, pending request or dialog', { timeout: 15_000 }, async () => {
    const srf = await connect(engine.ports.control);
    try {
      srf.invite(async (rq: any, rs: any) => { await srf.createUAS(rq, rs, { localSdp: TEST_SDP }); });
      await routesApplied(srf);
      const phone = await SipUdpPhone.open(engine.ports.sip);
      try {
        for (let i = 0; i < 5; i++) {
          const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
          phone.sendRaw(inviteText(phone, ids, engine.ports.sip));
          const ok = await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 200') && m.header('Call-ID') === ids.callId);
          phone.sendRaw(req(phone, 'ACK', ok, 1));
          phone.sendRaw(req(phone, 'BYE', ok, 2));
          await phone.waitFor((m) => m.header('Call-ID') === ids.callId && /BYE/.test(m.header('CSeq') ?? ''));
        }
        assert.equal(engine.engine.stats().dialogs, 0);
        assert.ok(engine.engine.stats().serverTransactions > 0, 'the BYE transactions wait out Timer J');
        clock.advance(64 * T1 - 1);
        assert.ok(engine.engine.stats().serverTransactions > 0, 'not before 64*T1');
        clock.advance(1);
        assert.deepEqual(engine.engine.stats(), ZERO);
      } finally {
        phone.close();
      }
    } finally {
      srf.disconnect();
    }
  });

  test('an app that dies leaves its dialog in place until the orphan deadline; a BYE no app takes is held, then answered 200', { timeout: 15_000 }, async () => {
    const srf = await connect(engine.ports.control);
    let acked = false;
    srf.invite(async (rq: any, rs: any) => {
      const dialog = await srf.createUAS(rq, rs, { localSdp: TEST_SDP });
      dialog.once('ack', () => { acked = true; });
    });
    await routesApplied(srf);
    const phone = await SipUdpPhone.open(engine.ports.sip);
    try {
      const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
      phone.sendRaw(inviteText(phone, ids, engine.ports.sip));
      const ok = await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 200'));
      phone.sendRaw(req(phone, 'ACK', ok, 1));
      await pollUntil(() => acked, { timeoutMs: 5_000, what: 'the ACK to reach the app' });
      srf.disconnect();
      await pollUntil(() => engine.engine.stats().orphanedDialogs === 1, { timeoutMs: 5_000, what: 'the engine to see the app gone' });
      const disconnectedAt = clock.now();
      clock.advance(64 * T1);
      assert.equal(engine.engine.stats().dialogs, 1, 'the dialog outlives its app');
      assert.equal(engine.engine.stats().orphanedDialogs, 1, 'with an orphan deadline running');
      phone.sendRaw(req(phone, 'BYE', ok, 2));
      await pollUntil(() => engine.engine.stats().heldRequests === 1, { timeoutMs: 5_000, what: 'the BYE to be held' });
      clock.advance(disconnectedAt + ORPHAN_MS - 1 - clock.now());
      assert.equal(engine.engine.stats().heldRequests, 1, 'still held 1 ms before the orphan deadline');
      assert.equal(phone.count((m) => /BYE/.test(m.header('CSeq') ?? '')), 0, 'no answer to the BYE before the deadline');
      clock.advance(1);
      const r = await phone.waitFor((m) => /BYE/.test(m.header('CSeq') ?? ''));
      assert.match(r.startLine, /^SIP\/2\.0 200/);
      assert.equal(clock.now() - disconnectedAt, ORPHAN_MS, 'answered at the orphan deadline');
      const st = engine.engine.stats();
      assert.deepEqual([st.dialogs, st.orphanedDialogs, st.heldRequests], [0, 0, 0]);
    } finally {
      phone.close();
    }
  });
});
