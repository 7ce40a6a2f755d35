/**
 * F12: a TCP next hop that never answers the SYN (a dead trunk on a real network: no RST, no ICMP).
 * The trunk sits in a network namespace of its own whose iptables rule drops our SYNs; a SIPp phone on
 * another trunk calls it through the gateway (all three ferry parts). ferry sip tells the gateway's
 * drachtio-srf at once that the INVITE was sent (it is held on the connection still opening), so:
 *  - the caller hanging up after 2 s gets 200 to its CANCEL and 487 to its INVITE at once, the call
 *    ends `sip-cancel`, and ferry sip, ferry media and the gateway are back to zero (client
 *    transactions, pending requests, dialogs, pipelines, active calls) long before Timer B would have
 *    ended the callee leg; the server transactions follow when their RFC 3261 timers end (the CANCEL's
 *    over UDP waits Timer J, 64·T1);
 *  - a caller that waits is ended by the gateway's no-answer timer (FERRY_NO_ANSWER_MS, 2 s here) with
 *    480, not after Timer B, and everything is back to zero.
 * T1 is 120 ms (Timer B and J 7.7 s) so the server transactions' timers end within the test.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../helpers/free-port';
import { describeSipp, startSipp, type SippProcess } from '../helpers/sipp';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import { SynDroppingTarget } from '../helpers/syn-dropping-target';
import type { CallRecord } from '../../src/gateway/state/call-record';

const API_TOKEN = 'f12-syn-dropped-test-token-0123456789';
const NO_ANSWER_MS = 2000;
const T1_MS = 120;
/** Timer B (64·T1): when the callee leg would end without the gateway's help; Timer J is as long */
const TIMER_B_MS = 64 * T1_MS;

interface SipCounts { clientTransactions: number; serverTransactions: number; dialogs: number; pending: number }

describe('F12: a TCP next hop that never answers the SYN (gateway, SIPp caller, netns + iptables DROP)', { timeout: 180_000 }, () => {
  let target: SynDroppingTarget;
  let stack: Stack;
  let dir: string;
  let phonePort: number;
  const sipps: SippProcess[] = [];

  before(async () => {
    target = await SynDroppingTarget.start(1);
    phonePort = await freePort();
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-f12-'));
    const config = {
      domain: 'ferry.local',
      users: [],
      trunks: [
        { name: 'phone', address: `127.0.0.1:${phonePort}`, transport: 'udp', acceptFrom: [`udp:127.0.0.1:${phonePort}`] },
        { name: 'dead', address: `${target.address}:${target.ports[0]}`, transport: 'tcp' },
      ],
      routes: [{ match: '9(\\d+)', to: 'trunk:dead', rewrite: '$1' }],
    };
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify(config, null, 2));
    stack = await startStack({
      partEnv: {
        gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'), FERRY_NO_ANSWER_MS: String(NO_ANSWER_MS), FERRY_API_TOKEN: API_TOKEN },
        // live counts every 200 ms; T4 short so the caller's INVITE server transaction ends soon after its ACK
        sip: { FERRY_SIP_STATS_INTERVAL_MS: '200', FERRY_SIP_T1_MS: String(T1_MS), FERRY_SIP_T2_MS: '2000', FERRY_SIP_T4_MS: '500' },
      },
    });
  });

  /** runs a test body; on failure adds what the parts logged */
  const explained = (fn: () => Promise<void>) => async (): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      for (const s of sipps) await s.stop().catch(() => undefined);
      const log = stack.output.filter((l) => !l.startsWith('[sip] ferry sip stats ') && !l.includes('relay worker')).slice(-25).join('\n');
      throw new Error(`${(err as Error).message}\nlast lines of the parts:\n${log}`);
    }
  };

  after(async () => {
    for (const s of sipps) await s.stop().catch(() => undefined);
    await stack?.stop();
    await target?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** ferry sip's newest `ferry sip stats` line */
  const sipCounts = (): SipCounts | undefined => {
    const line = [...stack.output].reverse().find((l) => l.startsWith('[sip] ferry sip stats '));
    return line ? (JSON.parse(line.slice('[sip] ferry sip stats '.length)) as SipCounts) : undefined;
  };
  const sipCallsAtZero = (): boolean => {
    const c = sipCounts();
    return !!c && c.clientTransactions === 0 && c.dialogs === 0 && c.pending === 0;
  };
  const callTo = async (dialled: string): Promise<CallRecord | undefined> => {
    const { calls } = await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all', API_TOKEN);
    return calls.find((c) => c.callee.uri.includes(`sip:${dialled.slice(1)}@`));
  };
  const activeCalls = async (): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`, { headers: { Authorization: `Bearer ${API_TOKEN}` } });
    return Number(/^ferry_active_calls (\d+)$/m.exec(await res.text())?.[1] ?? NaN);
  };

  /** everything back to zero: the call ended with `reason`, no pipeline, no active call, ferry sip's counts at 0 */
  const expectAllZero = async (dialled: string, reason: string, sinceMs: number): Promise<void> => {
    const ended = await waitFor(async () => {
      const c = await callTo(dialled);
      return c?.state === 'ended' ? c : undefined;
    }, 5000, 50, `the call to ${dialled} ended`);
    assert.equal(ended.reason, reason);
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 50, 'ferry media back to 0 pipelines');
    assert.equal(await activeCalls(), 0, 'the gateway has no active call');
    await waitFor(sipCallsAtZero, 3000, 50, `ferry sip back to 0 client transactions, pending requests and dialogs (last: ${JSON.stringify(sipCounts())})`);
    // 2.5 s before Timer B: far enough that Timer B cannot be what ended the leg, with room for a loaded machine
    // (a clean-clone run was back to zero 693 ms after the 2 s hang-up; the bound was Timer B - 5 s = 680 ms)
    assert.ok(Date.now() - sinceMs < TIMER_B_MS - 2500, `back to zero ${Date.now() - sinceMs} ms after the call started: long before Timer B (${TIMER_B_MS} ms)`);
    await waitFor(() => sipCounts()?.serverTransactions === 0, TIMER_B_MS + 3000, 100, `ferry sip's server transactions to end (last: ${JSON.stringify(sipCounts())})`);
  };

  test('F12: the caller hangs up after 2 s -> its CANCEL gets 200 and 487 at once, the call ends sip-cancel, every count back to zero', explained(async () => {
    const startedAt = Date.now();
    const phone = await startSipp({
      scenario: 'gateway-uac-cancel-fast-answers.xml', localPort: phonePort, remote: `127.0.0.1:${stack.sipPort}`,
      service: '95550100', talkMs: 2000, lingerMs: 500, timeoutS: 30,
    });
    sipps.push(phone);
    // the fault is real: the gateway's INVITE to the trunk waits on a SYN nobody answers
    await target.waitForDroppedSyns(target.ports[0]!, 1, 5000);
    const routing = await waitFor(() => callTo('95550100'), 5000, 50, 'the call record');
    assert.notEqual(routing.state, 'ended', 'the call is up while the trunk does not answer');
    const result = await phone.done;
    // SIPp fails the call when the 200 to its CANCEL or the 487 takes more than 1 s (recv timeout)
    assert.equal(result.exitCode, 0, `the caller got 200 to its CANCEL and 487 within 1 s each: ${describeSipp(result)}`);
    await expectAllZero('95550100', 'sip-cancel', startedAt);
    assert.equal(target.connections.length, 0, 'no connection to the trunk came up');
  }));

  test('F12: nobody hangs up -> the gateway\'s no-answer timer ends the call with 480 (not Timer B), every count back to zero', explained(async () => {
    const startedAt = Date.now();
    const phone = await startSipp({
      scenario: 'gateway-uac-unavailable.xml', localPort: phonePort, remote: `127.0.0.1:${stack.sipPort}`,
      service: '95550101', lingerMs: 500, timeoutS: 40,
    });
    sipps.push(phone);
    const result = await phone.done;
    assert.equal(result.exitCode, 0, `the caller got 480: ${describeSipp(result)}`);
    const ms = Date.now() - startedAt;
    assert.ok(ms >= NO_ANSWER_MS - 200 && ms < Math.min(NO_ANSWER_MS + 5000, TIMER_B_MS - 500), `480 after ${ms} ms (FERRY_NO_ANSWER_MS ${NO_ANSWER_MS}; Timer B would be ${TIMER_B_MS})`);
    await expectAllZero('95550101', 'no-answer', startedAt);
  }));
});
