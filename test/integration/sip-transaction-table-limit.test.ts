/**
 * The server transaction table's bound (FERRY_SIP_MAX_SERVER_TRANSACTIONS, docs/security.md "Connections"):
 * a UDP transaction outlives its answer by 64 x T1 (32 s by default) and a stranger starts one per datagram,
 * from any source address, so a flood of new requests must not grow ferry sip without limit. A running ferry
 * sip (real UDP and control sockets) with a bound of 20 and T1 = 50 ms, a drachtio-srf app answering: OPTIONS
 * beyond the bound get 503 with Retry-After and no transaction; a call in progress is still hung up (its BYE is
 * exempt: the positive control); once the transactions expire new requests are served again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { loadSipSettings } from '../../src/cli/sip-settings';
import { DEFAULT_MAX_SERVER_TRANSACTIONS } from '../../src/sip/transaction/server-transaction-table';
import { SipUdpPhone, inviteText, sipToken, TEST_SDP, type ReceivedSip } from '../helpers/sip-udp-phone';
import { connectAnsweringSrf } from '../helpers/srf-app';
import { pollUntil } from '../helpers/wait-for';


const BOUND = 20;

function optionsText(phone: SipUdpPhone, port: number, callId: string): string {
  return [`OPTIONS sip:service@127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()};rport`,
    'Max-Forwards: 70', `From: <sip:flood@127.0.0.1>;tag=${sipToken()}`, 'To: <sip:service@127.0.0.1>', `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
}

describe('ferry sip: the server transaction table is bounded', { timeout: 60_000 }, () => {
  let engine: RunningSipEngine;
  let srf: any;
  let destroyed: string[] = [];

  before(async () => {
    engine = await startSipEngine({ host: '127.0.0.1', maxServerTransactions: BOUND, timers: { t1: 50 } });
    ({ srf, destroyed } = await connectAnsweringSrf(engine.ports.control, TEST_SDP));
  });
  after(async () => {
    try { srf.disconnect(); } catch { /* gone */ }
    await engine.close();
  });

  test('a flood of new OPTIONS: at most the bound get transactions, the rest 503 with Retry-After; a call in progress still hangs up; room again once they expire', { timeout: 30_000 }, async () => {
    const phone = await SipUdpPhone.open(engine.ports.sip);
    const flooder = await SipUdpPhone.open(engine.ports.sip);
    try {
      // a call, set up before the flood
      const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
      phone.sendRaw(inviteText(phone, ids, engine.ports.sip));
      const ok = await phone.waitFor((m: ReceivedSip) => m.header('Call-ID') === ids.callId && m.startLine.startsWith('SIP/2.0 200'));
      phone.sendRaw([`ACK sip:service@127.0.0.1 SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()}`,
        `From: ${ok.header('From')}`, `To: ${ok.header('To')}`, `Call-ID: ${ids.callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n'));

      // 3 x the bound new OPTIONS, one after another (each answered before the next: loopback UDP drops bursts)
      const ids3 = Array.from({ length: 3 * BOUND }, () => sipToken());
      for (const callId of ids3) {
        flooder.sendRaw(optionsText(flooder, engine.ports.sip, callId));
        await flooder.waitFor((m: ReceivedSip) => m.header('Call-ID') === callId, 5_000);
        assert.ok(engine.engine.stats().serverTransactions <= BOUND, `${engine.engine.stats().serverTransactions} transactions open`);
      }
      const answers = ids3.map((callId) => flooder.received.find((m) => m.header('Call-ID') === callId)!);
      const served = answers.filter((m) => m.startLine.startsWith('SIP/2.0 200')).length;
      const refused = answers.filter((m) => m.startLine.startsWith('SIP/2.0 503'));
      assert.ok(served >= BOUND - 2 && served <= BOUND, `${served} OPTIONS served (bound ${BOUND})`);
      assert.equal(served + refused.length, ids3.length, 'every OPTIONS got 200 or 503');
      assert.ok(refused.every((m) => Number(m.header('Retry-After')) > 0), 'each 503 has a Retry-After');
      assert.equal(engine.engine.refusedTransactionTableFull, refused.length);
      assert.equal(engine.engine.stats().serverTransactions, BOUND);

      // the call in progress is exempt: its BYE gets its transaction and the app's 200
      phone.sendRaw([`BYE sip:service@127.0.0.1 SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()}`,
        `From: ${ok.header('From')}`, `To: ${ok.header('To')}`, `Call-ID: ${ids.callId}`, 'CSeq: 2 BYE', 'Content-Length: 0', '', ''].join('\r\n'));
      await phone.waitFor((m: ReceivedSip) => m.startLine.startsWith('SIP/2.0 200') && /BYE/.test(m.header('CSeq') ?? ''), 5_000);
      await pollUntil(() => destroyed.length === 1, { timeoutMs: 2_000, what: "srf's destroy event for the call" });

      // the transactions end 64 x T1 (3.2 s) after their answers; then a new OPTIONS is served again
      await pollUntil(() => engine.engine.stats().serverTransactions < BOUND, { timeoutMs: 10_000, what: 'the flood\'s transactions to expire' });
      const later = sipToken();
      flooder.sendRaw(optionsText(flooder, engine.ports.sip, later));
      const again = await flooder.waitFor((m: ReceivedSip) => m.header('Call-ID') === later, 5_000);
      assert.match(again.startLine, /^SIP\/2\.0 200/);
    } finally {
      phone.close();
      flooder.close();
    }
  });

  test('FERRY_SIP_MAX_SERVER_TRANSACTIONS sets the bound; 0 is refused', { timeout: 10_000 }, () => {
    const before = process.env.FERRY_SIP_MAX_SERVER_TRANSACTIONS;
    try {
      delete process.env.FERRY_SIP_MAX_SERVER_TRANSACTIONS;
      assert.equal(loadSipSettings({}).engine.maxServerTransactions, DEFAULT_MAX_SERVER_TRANSACTIONS);
      assert.equal(loadSipSettings({ FERRY_SIP_MAX_SERVER_TRANSACTIONS: '1234' }).engine.maxServerTransactions, 1234);
      assert.throws(() => loadSipSettings({ FERRY_SIP_MAX_SERVER_TRANSACTIONS: '0' }), /FERRY_SIP_MAX_SERVER_TRANSACTIONS/);
    } finally {
      if (before !== undefined) process.env.FERRY_SIP_MAX_SERVER_TRANSACTIONS = before;
    }
  });
});
