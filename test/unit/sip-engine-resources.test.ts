/**
 * Every transaction, pending request and dialog of ferry sip is released when calls end (short
 * RFC 3261 timers so Timer J/K/L/M run out in about a second), and a dialog whose app died stays
 * until the orphan deadline (a BYE no app takes is held until then).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { SipUdpPhone, inviteText, sipToken, TEST_SDP, type ReceivedSip } from '../helpers/sip-udp-phone';
import { connectBareSrf as connect } from '../helpers/srf-app';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ORPHAN_MS = 3_000;

function req(phone: SipUdpPhone, method: string, ok: ReceivedSip, cseq: number): string {
  return [`${method} sip:service@127.0.0.1 SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()};rport`,
    'Max-Forwards: 70', `From: ${ok.header('From')}`, `To: ${ok.header('To')}`, `Call-ID: ${ok.header('Call-ID')}`,
    `CSeq: ${method === 'ACK' ? 1 : cseq} ${method}`, 'Content-Length: 0', '', ''].join('\r\n');
}

describe('ferry sip resources return to zero', () => {
  let engine: RunningSipEngine;
  before(async () => {
    engine = await startSipEngine({ timers: { t1: 20, t2: 160, t4: 200 }, orphanDialogMs: ORPHAN_MS });
  });
  after(async () => {
    await engine.close();
  });

  test('five calls answered by srf and hung up by the phone leave no transaction, pending request or dialog', async () => {
    const srf = await connect(engine.ports.control);
    try {
      srf.invite(async (rq: any, rs: any) => { await srf.createUAS(rq, rs, { localSdp: TEST_SDP }); });
      await sleep(100);
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
        await sleep(64 * 20 + 500);
        assert.deepEqual(engine.engine.stats(),
          { serverTransactions: 0, clientTransactions: 0, pending: 0, dialogs: 0, bindings: 0, orphanedDialogs: 0, heldRequests: 0 });
      } finally {
        phone.close();
      }
    } finally {
      srf.disconnect();
    }
  });

  test('an app that dies leaves its dialog in place until the orphan deadline; a BYE no app takes is held, then answered 200', async () => {
    const srf = await connect(engine.ports.control);
    srf.invite(async (rq: any, rs: any) => { await srf.createUAS(rq, rs, { localSdp: TEST_SDP }); });
    await sleep(100);
    const phone = await SipUdpPhone.open(engine.ports.sip);
    try {
      const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
      phone.sendRaw(inviteText(phone, ids, engine.ports.sip));
      const ok = await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 200'));
      phone.sendRaw(req(phone, 'ACK', ok, 1));
      await sleep(100);
      const disconnectedAt = Date.now();
      srf.disconnect();
      await sleep(64 * 20 + 300);
      assert.equal(engine.engine.stats().dialogs, 1, 'the dialog outlives its app');
      assert.equal(engine.engine.stats().orphanedDialogs, 1, 'with an orphan deadline running');
      phone.sendRaw(req(phone, 'BYE', ok, 2));
      const r = await phone.waitFor((m) => /BYE/.test(m.header('CSeq') ?? ''));
      assert.match(r.startLine, /^SIP\/2\.0 200/);
      assert.ok(Date.now() - disconnectedAt >= ORPHAN_MS - 5, 'answered at the orphan deadline');
      const st = engine.engine.stats();
      assert.deepEqual([st.dialogs, st.orphanedDialogs, st.heldRequests], [0, 0, 0]);
    } finally {
      phone.close();
    }
  });
});
