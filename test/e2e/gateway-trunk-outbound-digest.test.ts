import { after, before, describe, test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../helpers/free-port';
import { describeSipp, headerOf, startSipp, tracedMessages, type SippProcess } from '../helpers/sipp';
import type { CallRecord } from '../../src/gateway/state/call-record';
import { getJson, sippMediaPort, startStack, waitFor, type Stack } from '../helpers/stack';

/**
 * A PBX trunk that challenges our INVITEs: SIPp as the PBX answers the first INVITE with 407 and
 * checks the credentials of the second (SIPp verifyauth); SIPp as a phone on another trunk calls
 * through the gateway. With the trunk's outboundAuth the call connects and RTP flows both ways.
 */
const API_TOKEN = 'trunk-outbound-digest-test-token';

describe('trunk outbound digest', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  let pbxPort: number;
  let phonePort: number;
  const sipps: SippProcess[] = [];

  const start = async (outboundPassword = 'pbx-out-secret'): Promise<void> => {
    const config = {
      domain: 'ferry.local',
      users: [{ user: 'alice', password: 'alice-secret' }],
      trunks: [
        { name: 'phone', address: `127.0.0.1:${phonePort}`, transport: 'udp', acceptFrom: [`udp:127.0.0.1:${phonePort}`] },
        { name: 'pbx', address: `127.0.0.1:${pbxPort}`, transport: 'udp', outboundAuth: { username: 'ferry-out', password: outboundPassword } },
      ],
      routes: [{ match: '9(\\d+)', to: 'trunk:pbx', rewrite: '$1' }],
    };
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify(config, null, 2));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'), FERRY_NO_ANSWER_MS: '8000', FERRY_API_TOKEN: API_TOKEN } } });
  };

  before(async () => {
    pbxPort = await freePort();
    phonePort = await freePort();
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-trunk-auth-'));
  });

  after(async () => {
    for (const s of sipps) await s.stop().catch(() => undefined);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const placeCall = async (): Promise<{ pbx: SippProcess; phone: SippProcess }> => {
    const pbx = await startSipp({ scenario: 'gateway-uas-challenge.xml', localPort: pbxPort, mediaPort: await sippMediaPort(), extraArgs: ['-rtp_echo'], timeoutS: 40 });
    sipps.push(pbx);
    await pbx.ready();
    const phone = await startSipp({
      scenario: 'gateway-uac-call.xml', localPort: phonePort, mediaPort: await sippMediaPort(), remote: `127.0.0.1:${stack.sipPort}`,
      service: '95550100', lingerMs: 5000, extraArgs: ['-rtp_echo'], timeoutS: 40,
    });
    sipps.push(phone);
    return { pbx, phone };
  };

  /** runs `fn`; on failure stops both SIPps and adds what they and the gateway saw */
  const explain = async <T>(pbx: SippProcess, phone: SippProcess, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      const [a, b] = [await pbx.stop(), await phone.stop()];
      const gw = stack.output.filter((l) => l.startsWith('[gateway]') || l.startsWith('[media]')).slice(-30).join('\n');
      throw new Error(`${(err as Error).message}\nPBX: ${describeSipp(a)}\nphone: ${describeSipp(b)}\ngateway:\n${gw}`);
    }
  };

  test('trunk outbound digest: a PBX that challenges with 407 gets the trunk credentials and the call connects (RTP both ways)', async () => {
    await start();
    const { pbx, phone } = await placeCall();
    const answered = await explain(pbx, phone, () => waitFor(async () => {
      const res = await fetch(`http://127.0.0.1:${stack.httpPort}/api/calls?state=all`, { headers: { Authorization: `Bearer ${API_TOKEN}` } });
      const calls = res.ok ? ((await res.json()) as { calls: CallRecord[] }).calls : [];
      return calls.find((c) => c.state === 'answered' && c.callee.party === 'pbx');
    }, 20_000, 50, 'the call answered through the challenging PBX'));
    // RTP both ways: each endpoint of the call's pipeline receives packets (the phone plays, the PBX echoes)
    assert.ok(answered);
    // RTP both ways on both legs: ferry media's per-element packet counts (the phone plays, the PBX echoes)
    type Element = { type: string; packetsFromPeer: number; packetsToPeer: number };
    let seen: Element[] = [];
    await explain(pbx, phone, () => waitFor(async () => {
      const stats = await getJson<{ pipelinesDetail: { elements: Element[] }[] }>(stack.mediaPort, '/stats');
      seen = stats.pipelinesDetail.flatMap((p) => p.elements);
      return seen.length === 2 && seen.every((e) => e.packetsFromPeer > 20 && e.packetsToPeer > 20);
    }, 8000, 100, 'RTP both ways on both legs').catch((err: Error) => {
      throw new Error(`${err.message} (${JSON.stringify(seen)})`);
    }));
    const phoneResult = await phone.done;
    const pbxResult = await pbx.done;
    assert.equal(phoneResult.exitCode, 0, `the phone got 200 and its BYE answered: ${describeSipp(phoneResult)}`);
    assert.equal(pbxResult.exitCode, 0, `the PBX saw a valid digest: ${describeSipp(pbxResult)}`);
    const pbxGot = tracedMessages(pbxResult).filter((m) => m.direction === 'received' && /^INVITE /.test(m.firstLine));
    assert.equal(pbxGot.length, 2, 'INVITE, then INVITE with credentials');
    // the digest response is right for the trunk's password (RFC 2617 without qop, as challenged)
    const header = headerOf(pbxGot[1]!, 'Proxy-Authorization') ?? '';
    const param = (name: string): string => new RegExp(`${name}="([^"]*)"`).exec(header)?.[1] ?? '';
    const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
    assert.equal(param('username'), 'ferry-out');
    assert.equal(param('realm'), 'pbx.test');
    const expected = md5(`${md5(`ferry-out:pbx.test:pbx-out-secret`)}:${param('nonce')}:${md5(`INVITE:${param('uri')}`)}`);
    assert.equal(param('response'), expected, `the response is computed with the trunk's password: ${header}`);
  });
});
