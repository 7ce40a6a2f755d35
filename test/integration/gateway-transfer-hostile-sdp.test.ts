import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * A blind transfer's target answers with an SDP that aims media where no SDP may aim it (docs/security.md,
 * "SDP validation"): a link-local address (a cloud's metadata service). The answer is refused as a caller's
 * or a callee's would be — the target's leg is hung up, the transfer fails (`502`, SIP 488), the media
 * server is never told to send there — whether the target is a user with one registration or with two
 * rung at once (docs/gateway.md, "A call", step 2). The positive control: the same transfer to a target
 * answering with its own address succeeds. Real ferry sip, gateway and ferry media, scripted UDP phones.
 */
const PASSWORD = 'transfer-sdp-secret';
const HOSTILE = 'v=0\r\no=- 7 7 IN IP4 169.254.169.254\r\ns=-\r\nc=IN IP4 169.254.169.254\r\nt=0 0\r\nm=audio 80 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

/** a phone whose answers aim its media at the metadata address */
class MetadataAimingPhone extends RtpPhone {
  override async sdp(): Promise<string> {
    return HOSTILE;
  }
}

describe('a blind transfer target\'s answer is held to the SDP rules', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  const caller = new SipPhone(new RtpPhone(), { user: 'caller' });
  /** the trunk phone the caller talks to first; it leaves with the transfer */
  const partyA = new SipPhone(new RtpPhone(), { user: 'a' });
  /** mal: one registration, answering with the hostile SDP; duo: two, the newer hostile; ok: one, answering with its own address */
  const mal = new SipPhone(new MetadataAimingPhone(), { user: 'mal', address: '127.0.0.2', ring: true });
  const duo = [new SipPhone(new RtpPhone(), { user: 'duo', address: '127.0.0.2', ring: true }), new SipPhone(new MetadataAimingPhone(), { user: 'duo', address: '127.0.0.2', ring: true })];
  const ok = new SipPhone(new RtpPhone(), { user: 'ok', address: '127.0.0.2', ring: true });

  before(async () => {
    const callerPort = await caller.start();
    const aPort = await partyA.start();
    for (const p of [mal, ...duo, ok]) await p.start();
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-xfer-sdp-'));
    const file = path.join(dir, 'ferry.json');
    await writeFile(file, JSON.stringify({
      domain: 'ferry.local',
      users: ['mal', 'duo', 'ok'].map((user) => ({ user, password: PASSWORD })),
      trunks: [
        { name: 'caller', address: `127.0.0.1:${callerPort}`, transport: 'udp', acceptFrom: [`127.0.0.1:${callerPort}`] },
        { name: 'a', address: `127.0.0.1:${aPort}`, transport: 'udp', acceptFrom: [`127.0.0.1:${aPort}`] },
      ],
      routes: [{ match: '8(\\d+)', to: 'trunk:a', rewrite: '$1' }, { match: '.*', to: 'user' }],
    }));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: file, FERRY_CALL_RECORD_TTL_MS: '60000', FERRY_NO_ANSWER_MS: '20000', FERRY_RING: 'all' } } });
    for (const p of [mal, ...duo, ok]) await p.register({ host: '127.0.0.1', port: stack.sipPort }, PASSWORD);
  });

  after(async () => {
    if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.join('\n'));
    for (const p of [caller, partyA, mal, ...duo, ok]) await p.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const via = (): { host: string; port: number } => ({ host: '127.0.0.1', port: stack.sipPort });
  const calls = async (): Promise<CallRecord[]> => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls;
  const events = (r: CallRecord): string => r.timeline.map((e) => `${e.event}(${e.detail ?? ''})`).join(', ');

  /** the caller talks to the trunk phone, then the API transfers the caller to `target`; `answerer` answers */
  async function transferTo(target: string, ringing: SipPhone[], answerer: SipPhone): Promise<{ status: number; id: string; since: number }> {
    const known = new Set((await calls()).map((c) => c.id));
    await caller.call('sip:8200@ferry.local', via());
    const id = (await waitFor(async () => (await calls()).find((c) => !known.has(c.id)), 5000, 25, 'the call')).id;
    const since = Date.now();
    const transfer = fetch(`http://127.0.0.1:${stack.httpPort}/api/calls/${id}/transfer`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ target, keep: 'caller' }),
    });
    await waitFor(() => ringing.every((p) => p.ringing), 10_000, 10, `${target}'s phones ring`);
    await answerer.answerRinging();
    const res = await transfer;
    await res.text();
    return { status: res.status, id, since };
  }

  async function endCall(): Promise<void> {
    await caller.hangup().catch(() => undefined);
    for (const p of [caller, partyA, mal, ...duo, ok]) await p.media.stopMedia();
    await waitFor(async () => (await calls()).every((c) => c.state === 'ended'), 10_000, 25, 'every call ended');
    await waitFor(async () => {
      const s = await getJson<{ pipelines: number; elements: number; boundPorts: number }>(stack.mediaPort, '/stats');
      return s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0;
    }, 5000, 25, 'ferry media back to no pipeline, element or bound port');
  }

  test('S1: a target with one registration answering with a link-local SDP: its leg is hung up, the transfer fails 502 (SIP 488), the refusal is on the timeline', { timeout: 30_000 }, async () => {
    const t = await transferTo('mal', [mal], mal);
    assert.equal(t.status, 502);
    await mal.waitForRequest('BYE', 5000, t.since);
    const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${t.id}`);
    assert.ok(r.timeline.some((e) => e.event === 'sdp-refused' && e.detail?.startsWith('transfer target answer:')), events(r));
    assert.ok(r.timeline.some((e) => e.event === 'transfer-failed' && e.detail?.startsWith('488')), events(r));
    await endCall();
  });

  test('S2: a target with two registrations rung at once, the one answering aims at the metadata address: refused the same way', { timeout: 30_000 }, async () => {
    const t = await transferTo('duo', duo, duo[1]!);
    assert.equal(t.status, 502);
    await duo[1]!.waitForRequest('BYE', 5000, t.since);
    await duo[0]!.waitForRequest('CANCEL', 5000, t.since);
    const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${t.id}`);
    assert.ok(r.timeline.some((e) => e.event === 'sdp-refused' && e.detail?.startsWith('transfer target answer:')), events(r));
    await endCall();
  });

  test('S3 (control): a target answering with its own address is transferred to', { timeout: 30_000 }, async () => {
    const t = await transferTo('ok', [ok], ok);
    assert.equal(t.status, 200);
    const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${t.id}`);
    assert.ok(!r.timeline.some((e) => e.event === 'sdp-refused'), events(r));
    await caller.hangup();
    await ok.waitForRequest('BYE', 5000, t.since);
    await endCall();
  });
});
