import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import { freePort } from '../helpers/free-port';
import { describeSipp, runSipp } from '../helpers/sipp';
import { SipUdpPhone, sipToken } from '../helpers/sip-udp-phone';
import { webphoneRegisters } from '../helpers/raw-webphone-registration';
import dgram from 'node:dgram';

/**
 * A phone that rings and never answers: 100 + 180 to an INVITE, 200 to a CANCEL followed by 487 to the
 * INVITE. Keeps a transfer to it in progress as long as a test needs.
 */
class RingingPhone {
  readonly socket = dgram.createSocket('udp4');
  readonly invites: string[] = [];
  readonly cancels: string[] = [];

  async start(): Promise<number> {
    const pending = new Map<string, string>();
    this.socket.on('message', (buf, rinfo) => {
      const text = buf.toString('utf8');
      const head = text.split('\r\n\r\n')[0]!.split('\r\n');
      const method = head[0]!.split(' ')[0]!;
      const copy = (t: string, tag: boolean, status: string): string => {
        const h = t.split('\r\n\r\n')[0]!.split('\r\n');
        const keep = h.filter((l) => /^(via|from|to|call-id|cseq)\s*:/i.test(l)).map((l) => (tag && /^to\s*:/i.test(l) && !/tag=/.test(l) ? `${l};tag=ringing1` : l));
        return [`SIP/2.0 ${status}`, ...keep, 'Content-Length: 0', '', ''].join('\r\n');
      };
      const send = (m: string): void => void this.socket.send(Buffer.from(m), rinfo.port, rinfo.address);
      const callId = head.find((l) => /^call-id\s*:/i.test(l))?.split(':')[1]?.trim() ?? '';
      if (method === 'INVITE') {
        this.invites.push(text);
        pending.set(callId, text);
        send(copy(text, false, '100 Trying'));
        send(copy(text, true, '180 Ringing'));
      } else if (method === 'CANCEL') {
        this.cancels.push(text);
        send(copy(text, false, '200 OK'));
        const invite = pending.get(callId);
        if (invite) send(copy(invite, true, '487 Request Terminated'));
      }
    });
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    return this.socket.address().port;
  }

  close(): void {
    this.socket.close();
  }
}
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Call transfer through the real three ferry processes with scripted SIP/RTP phones (docs/transfer.md):
 * blind by REFER and by the REST API, a blind transfer to a busy target (the call goes on), attended
 * with Replaces. Every phone is a trunk of its own (the config names its port): dialling 7xxx rings
 * B, 8xxx rings C, 6xxx rings D (always busy). Packets are counted between the parties that remain.
 */
/** a mono 16-bit 8 kHz WAV of a sine tone (the ring-back file the media server plays) */
function toneWav(hz: number, ms: number): Buffer {
  const samples = Math.round((8000 * ms) / 1000);
  const b = Buffer.alloc(44 + samples * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + samples * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(8000, 24);
  b.writeUInt32LE(16000, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / 8000)), 44 + i * 2);
  return b;
}

interface MediaStats {
  pipelines: number;
  elements: number;
}

describe('gateway call transfer (REFER, Replaces, REST API)', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  /** SIPp's SIP port: the trunk "sipp" */
  let sippPort: number;
  const ringing = new RingingPhone();
  const phones: Record<'a' | 'a2' | 'b' | 'c' | 'd', SipPhone> = {
    a: new SipPhone(new RtpPhone(), { user: 'a' }),
    a2: new SipPhone(new RtpPhone(), { user: 'a2' }),
    b: new SipPhone(new RtpPhone(), { user: 'b' }),
    c: new SipPhone(new RtpPhone(), { user: 'c' }),
    d: new SipPhone(new RtpPhone(), { user: 'd', autoAnswer: false }),
  };

  before(async () => {
    const ports: Record<string, number> = {};
    for (const [name, phone] of Object.entries(phones)) ports[name] = await phone.start();
    sippPort = await freePort();
    ports.sipp = sippPort;
    ports.ringing = await ringing.start();
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-transfer-'));
    const trunk = (name: string): Record<string, unknown> => ({ name, address: `127.0.0.1:${ports[name]}`, transport: 'udp', acceptFrom: [`127.0.0.1:${ports[name]}`] });
    const config = {
      domain: 'ferry.local',
      users: [{ user: 'alice', password: 'alice-transfer-secret' }],
      trunks: ['a', 'a2', 'b', 'c', 'd', 'sipp', 'ringing'].map(trunk),
      routes: [
        { match: '7(\\d+)', to: 'trunk:b', rewrite: '$1' },
        { match: '8(\\d+)', to: 'trunk:c', rewrite: '$1' },
        { match: '6(\\d+)', to: 'trunk:d', rewrite: '$1' },
        { match: '5(\\d+)', to: 'trunk:ringing', rewrite: '$1' },
        { match: '.*', to: 'user' },
      ],
    };
    const file = path.join(dir, 'ferry.json');
    await writeFile(file, JSON.stringify(config, null, 2));
    await writeFile(path.join(dir, 'ringback.wav'), toneWav(425, 1000));
    stack = await startStack({
      partEnv: {
        media: { FERRY_MEDIA_FILES_DIR: dir },
        gateway: { FERRY_SIP_CONFIG: file, FERRY_CALL_RECORD_TTL_MS: '60000', FERRY_NO_ANSWER_MS: '3000', FERRY_TRANSFER_RINGBACK_URI: 'ringback.wav' },
      },
    });
  });

  after(async () => {
    if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.join('\n'));
    for (const phone of Object.values(phones)) await phone.close();
    ringing.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const via = (): { host: string; port: number } => ({ host: '127.0.0.1', port: stack.sipPort });
  const mediaStats = (): Promise<MediaStats> => getJson<MediaStats>(stack.mediaPort, '/stats');
  const calls = async (): Promise<CallRecord[]> => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls;
  const record = (id: string): Promise<CallRecord> => getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);

  /** more than `n` RTP packets arrived at `phone` after `since` */
  const hears = (phone: SipPhone, since: number, what: string, n = 20): Promise<unknown> =>
    waitFor(async () => (await phone.media.rtpReceivedBetween(since, Date.now())) > n, 10_000, 25, what);

  /** `from` calls `number`; both ends exchange packets; resolves with the new call's record id */
  async function bridged(from: SipPhone, to: SipPhone, number: string): Promise<string> {
    const before = new Set((await calls()).map((c) => c.id));
    const since = Date.now();
    await from.call(`sip:${number}@ferry.local`, via());
    await hears(from, since, `RTP at the caller of ${number}`);
    await hears(to, since, `RTP at the callee of ${number}`);
    const mine = (await calls()).filter((c) => !before.has(c.id) && c.state === 'answered');
    assert.equal(mine.length, 1, 'one new answered call');
    return mine[0]!.id;
  }

  const notifies = (phone: SipPhone, since: number): { body: string; event?: string; type?: string; state?: string }[] =>
    phone.received
      .filter((r) => r.method === 'NOTIFY' && r.at >= since)
      .map((r) => ({ body: r.message.body, event: r.message.headers.get('event')?.[0], type: r.message.headers.get('content-type')?.[0], state: r.message.headers.get('subscription-state')?.[0] }));

  async function hangUpAndZero(phone: SipPhone, other: SipPhone): Promise<void> {
    const since = Date.now();
    await phone.hangup();
    await phone.media.stopMedia();
    await other.waitForRequest('BYE', 5000, since);
    await other.media.stopMedia();
    await waitFor(async () => (await mediaStats()).pipelines === 0, 5000, 25, 'pipelines back to 0');
  }

  test('blind transfer by REFER from the callee: NOTIFY 100 then 200, the callee is released, caller and target talk', { timeout: 30_000 }, async () => {
    const { a, b, c } = phones;
    const id = await bridged(a, b, '7100');
    const during = await mediaStats();
    const since = Date.now();
    assert.equal(await b.refer('<sip:8100@ferry.local>'), 202);
    await b.waitForRequest('BYE', 10_000, since);
    await b.media.stopMedia();
    const frags = notifies(b, since);
    assert.ok(frags.length >= 2, `NOTIFYs: ${JSON.stringify(frags)}`);
    assert.equal(frags[0]!.body, 'SIP/2.0 100 Trying\r\n');
    assert.equal(frags.at(-1)!.body, 'SIP/2.0 200 OK\r\n');
    assert.match(frags.at(-1)!.state ?? '', /^terminated/);
    for (const f of frags) {
      assert.equal(f.event, 'refer');
      assert.equal(f.type, 'message/sipfrag;version=2.0');
    }
    const switched = Date.now();
    await hears(c, switched, 'RTP from the caller at the target');
    await hears(a, switched, 'RTP from the target at the caller');
    const r = await record(id);
    assert.equal(r.state, 'answered');
    assert.equal(r.caller.party, 'a');
    assert.equal(r.callee.party, 'c', 'the record follows the new leg');
    assert.deepEqual(
      r.transfers?.map((t) => [t.kind, t.by, t.left, t.stayed, t.joined, t.target]),
      [['blind', 'callee', 'b', 'a', 'c', '8100']],
    );
    assert.ok(r.timeline.some((e) => e.event === 'transferred'), 'the timeline shows the transfer');
    const now = await mediaStats();
    assert.deepEqual([now.pipelines, now.elements], [during.pipelines, during.elements], 'the same pipeline, the old endpoint released for the new');
    await hangUpAndZero(a, c);
  });

  test('blind transfer by REFER from SIPp (the caller): 202, NOTIFY 100/180/200 sipfrag, BYE; the called phone and the target talk', { timeout: 30_000 }, async () => {
    const { b, c } = phones;
    const since = Date.now();
    const result = await runSipp({ scenario: 'gateway-uac-refer.xml', localPort: sippPort, remote: `127.0.0.1:${stack.sipPort}`, service: '7200', keys: { refer_to: '8200' }, timeoutS: 20 });
    assert.equal(result.exitCode, 0, describeSipp(result));
    const switched = Date.now();
    await hears(c, switched, 'RTP from B at the target');
    await hears(b, switched, 'RTP from the target at B');
    const r = (await calls()).find((x) => x.createdAt >= since - 1000 && x.transfers?.length);
    assert.ok(r, 'the transferred call');
    assert.deepEqual(r.transfers?.map((t) => [t.kind, t.by, t.left, t.stayed, t.joined]), [['blind', 'caller', 'sipp', 'b', 'c']]);
    assert.equal(r.caller.party, 'c');
    await hangUpAndZero(b, c);
  });

  test('blind transfer where the transferor hangs up (SIP BYE and RTCP BYE) right after the 202: the transfer still completes', { timeout: 30_000 }, async () => {
    const { a, b, c } = phones;
    const id = await bridged(a, b, '7106');
    assert.equal(await b.refer('<sip:8106@ferry.local>'), 202);
    await b.hangup();
    await b.media.sendBye();
    await b.media.stopMedia();
    const switched = Date.now();
    await hears(c, switched, 'RTP from the caller at the target');
    await hears(a, switched, 'RTP from the target at the caller');
    const r = await record(id);
    assert.equal(r.state, 'answered', JSON.stringify(r.timeline.map((e) => e.event)));
    assert.deepEqual(r.transfers?.map((t) => [t.kind, t.left, t.joined]), [['blind', 'b', 'c']]);
    await hangUpAndZero(a, c);
  });

  test('blind transfer to a busy target: NOTIFY 486, the call goes on between the same two parties', { timeout: 30_000 }, async () => {
    const { a, b } = phones;
    const id = await bridged(a, b, '7101');
    const since = Date.now();
    assert.equal(await b.refer('<sip:6100@ferry.local>'), 202);
    const final = await waitFor(() => notifies(b, since).find((n) => /^SIP\/2\.0 [2-6]\d\d/.test(n.body)), 10_000, 25, 'final NOTIFY');
    assert.equal(final.body, 'SIP/2.0 486 Busy Here\r\n');
    const failedAt = Date.now();
    // positive control in the same window: both still hear each other, and no BYE reached the transferor
    await hears(a, failedAt, 'RTP from the callee after the failed transfer');
    await hears(b, failedAt, 'RTP from the caller after the failed transfer');
    assert.equal(b.received.filter((m) => m.method === 'BYE' && m.at >= since).length, 0, 'the transferor was not hung up');
    const r = await record(id);
    assert.equal(r.callee.party, 'b');
    assert.ok(r.timeline.some((e) => e.event === 'transfer-failed' && /486/.test(e.detail ?? '')), JSON.stringify(r.timeline));
    assert.equal(r.transfers, undefined);
    await hangUpAndZero(b, a);
  });

  test('blind transfer to a user whose webphone connection is gone (no unregister): final NOTIFY 480, the call goes on; control: while connected, the INVITE reaches it (486)', { timeout: 30_000 }, async () => {
    const { a, b } = phones;
    const ws = await webphoneRegisters(stack.wsPort, 'alice', 'alice-transfer-secret');
    const invites: string[] = [];
    ws.on('message', (d) => {
      const text = d.toString();
      if (!text.startsWith('INVITE ')) return;
      invites.push(text);
      // the live webphone is busy
      const keep = text.split('\r\n\r\n')[0]!.split('\r\n').filter((l) => /^(via|from|to|call-id|cseq)\s*:/i.test(l)).map((l) => (/^to\s*:/i.test(l) ? `${l};tag=wpbusy` : l));
      ws.send(['SIP/2.0 486 Busy Here', ...keep, 'Content-Length: 0', '', ''].join('\r\n'));
    });
    const id = await bridged(a, b, '7102');
    // control: the transfer's INVITE reaches the live webphone, which answers 486; the call is given back
    let since = Date.now();
    assert.equal(await b.refer('<sip:alice@ferry.local>'), 202);
    const busy = await waitFor(() => notifies(b, since).find((n) => /^SIP\/2\.0 [2-6]\d\d/.test(n.body)), 10_000, 25, 'final NOTIFY');
    assert.equal(busy.body, 'SIP/2.0 486 Busy Here\r\n');
    assert.equal(invites.length, 1, 'the INVITE reached the live webphone');
    const aliceBindings = async (): Promise<number> => (await getJson<{ registrations: unknown[] }>(stack.httpPort, '/api/registrations?user=alice')).registrations.length;
    assert.equal(await aliceBindings(), 1, 'control: a busy webphone keeps its binding');
    // the webphone vanishes without unregistering
    const closed = new Promise((r) => ws.once('close', r));
    ws.terminate();
    await closed;
    since = Date.now();
    assert.equal(await b.refer('<sip:alice@ferry.local>'), 202);
    const final = await waitFor(() => notifies(b, since).find((n) => /^SIP\/2\.0 [2-6]\d\d/.test(n.body)), 10_000, 25, 'final NOTIFY');
    assert.equal(final.body, 'SIP/2.0 480 Temporarily Unavailable\r\n');
    assert.ok(Date.now() - since < 3000, `failed after ${Date.now() - since} ms`);
    const failedAt = Date.now();
    await hears(a, failedAt, 'RTP from the callee after the failed transfer');
    await hears(b, failedAt, 'RTP from the caller after the failed transfer');
    const r = await record(id);
    assert.equal(r.callee.party, 'b');
    assert.ok(r.timeline.some((e) => e.event === 'transfer-failed' && /480/.test(e.detail ?? '')), JSON.stringify(r.timeline));
    assert.ok(r.timeline.some((e) => e.event === 'stale-registration-removed'), JSON.stringify(r.timeline));
    assert.equal(await aliceBindings(), 0, 'the binding ferry sip could not send to is forgotten');
    await hangUpAndZero(b, a);
  });

  test('blind transfer by the REST API: the callee leg is replaced by the target', { timeout: 30_000 }, async () => {
    const { a, b, c } = phones;
    const id = await bridged(a, b, '7102');
    const since = Date.now();
    const res = await fetch(`http://127.0.0.1:${stack.httpPort}/api/calls/${id}/transfer`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ target: '8102', keep: 'caller' }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    await b.waitForRequest('BYE', 5000, since);
    await b.media.stopMedia();
    const switched = Date.now();
    await hears(c, switched, 'RTP from the caller at the target');
    await hears(a, switched, 'RTP from the target at the caller');
    const r = await record(id);
    assert.deepEqual(r.transfers?.map((t) => [t.kind, t.by, t.left, t.joined]), [['blind', 'api', 'b', 'c']]);
    await hangUpAndZero(c, a);
  });

  test('attended transfer with Replaces: B and C talk, both of A\'s legs are released, the consultation call ends "transferred"', { timeout: 30_000 }, async () => {
    const { a, a2, b, c } = phones;
    const x = await bridged(a, b, '7103');
    const y = await bridged(a2, c, '8103');
    assert.equal((await mediaStats()).pipelines, 2);
    const ids = a2.dialogIds!;
    // the A–C dialog as A sees it: its Call-ID, the far end's tag (to-tag) and its own (from-tag)
    const replaces = encodeURIComponent(`${ids.callId};to-tag=${ids.remoteTag};from-tag=${ids.localTag}`);
    const since = Date.now();
    assert.equal(await a.refer(`<sip:8103@ferry.local?Replaces=${replaces}>`), 202);
    await a.waitForRequest('BYE', 10_000, since);
    await a2.waitForRequest('BYE', 10_000, since);
    await a.media.stopMedia();
    await a2.media.stopMedia();
    assert.equal(notifies(a, since).at(-1)?.body, 'SIP/2.0 200 OK\r\n');
    assert.ok(c.received.some((m) => m.method === 'INVITE' && m.at >= since), 'C was moved by one re-INVITE');
    assert.equal(b.received.filter((m) => m.method === 'INVITE' && m.at >= since).length, 0, 'B was not re-INVITEd');
    const switched = Date.now();
    await hears(b, switched, 'RTP from C at B');
    await hears(c, switched, 'RTP from B at C');
    await waitFor(async () => (await mediaStats()).pipelines === 1, 5000, 25, 'the consultation call\'s pipeline released');
    const rx = await record(x);
    assert.deepEqual(rx.transfers?.map((t) => [t.kind, t.by, t.left, t.stayed, t.joined]), [['attended', 'caller', 'a', 'b', 'c']]);
    assert.equal(rx.caller.party, 'c');
    const ry = await waitFor(async () => { const r = await record(y); return r.state === 'ended' ? r : undefined; }, 5000, 25, 'consultation call ended');
    assert.equal(ry.reason, 'transferred');
    await hangUpAndZero(b, c);
  });

  test('one transfer at a time (491 / API 409), a bad Refer-To 400; the call ending cancels the ringing target', { timeout: 30_000 }, async () => {
    const { a, b } = phones;
    const id = await bridged(a, b, '7104');
    assert.equal(await b.refer('<http://example.com/>'), 400);
    const since = Date.now();
    assert.equal(await b.refer('<sip:5104@ferry.local>'), 202);
    await waitFor(() => ringing.invites.length > 0, 5000, 25, 'the target rings');
    assert.equal(await b.refer('<sip:8104@ferry.local>'), 491, 'a second REFER while the first is in progress');
    const api = await fetch(`http://127.0.0.1:${stack.httpPort}/api/calls/${id}/transfer`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ target: '8104' }),
    });
    assert.equal(api.status, 409, await api.clone().text());
    assert.ok(notifies(b, since).some((n) => n.body === 'SIP/2.0 180 Ringing\r\n'), 'the transferor saw the target ring');
    // the transferee hangs up while the target rings: the transfer's INVITE is cancelled, everything released
    await hangUpAndZero(a, b);
    await waitFor(() => ringing.cancels.length > 0, 5000, 25, 'CANCEL to the ringing target');
    const r = await record(id);
    assert.equal(r.state, 'ended');
    assert.equal(r.transfers, undefined, 'nobody was transferred');
    assert.ok(r.timeline.some((e) => e.event === 'transfer-started'), JSON.stringify(r.timeline.map((e) => e.event)));
  });

  test('ring-back while the target rings; no answer: final NOTIFY 408 and the transferee hears the transferor again', { timeout: 30_000 }, async () => {
    const { a, b } = phones;
    const id = await bridged(a, b, '7107');
    // what A hears from B: the scripted phone's constant payload; the ring-back is a tone
    const fromB = (await a.media.stats()).lastPayloadHex;
    assert.match(fromB ?? '', /^(..)\1+$/, 'the phone sends a constant payload');
    const since = Date.now();
    const invites = ringing.invites.length;
    assert.equal(await b.refer('<sip:5107@ferry.local>'), 202);
    await waitFor(() => ringing.invites.length > invites, 5000, 25, 'the target rings');
    await waitFor(async () => { const p = (await a.media.stats()).lastPayloadHex; return p !== undefined && !/^(..)\1+$/.test(p); }, 5000, 10, 'the ring-back tone at the transferee');
    const final = await waitFor(() => notifies(b, since).find((n) => /^SIP\/2\.0 [2-6]\d\d/.test(n.body)), 10_000, 25, 'final NOTIFY');
    assert.equal(final.body, 'SIP/2.0 408 Request Timeout\r\n');
    await waitFor(async () => (await a.media.stats()).lastPayloadHex === fromB, 5000, 10, 'the transferor\'s audio back at the transferee');
    const restoredAt = Date.now();
    await hears(a, restoredAt, 'RTP from the transferor after the failed transfer');
    await hears(b, restoredAt, 'RTP from the transferee after the failed transfer');
    const r = await record(id);
    const events = r.timeline.map((e) => e.event);
    assert.ok(events.includes('ringback') && events.includes('media-restored') && events.includes('transfer-failed'), events.join(','));
    await hangUpAndZero(a, b);
  });

  test('REFER outside a dialog: 403; in a dialog nobody knows: 481', { timeout: 15_000 }, async () => {
    const raw = await SipUdpPhone.open(stack.sipPort);
    try {
      const refer = (toTag: string): string => {
        const callId = sipToken();
        return [
          `REFER sip:7100@127.0.0.1:${stack.sipPort} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bK${sipToken()};rport`,
          'Max-Forwards: 70',
          `From: <sip:stranger@127.0.0.1:${raw.port}>;tag=${sipToken()}`,
          `To: <sip:7100@127.0.0.1:${stack.sipPort}>${toTag}`,
          `Call-ID: ${callId}`,
          'CSeq: 1 REFER',
          `Contact: <sip:stranger@127.0.0.1:${raw.port}>`,
          'Refer-To: <sip:8100@ferry.local>',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n');
      };
      raw.sendRaw(refer(''));
      const outside = await raw.waitFor((m) => /^SIP\/2\.0 [2-6]/.test(m.startLine));
      assert.match(outside.startLine, /^SIP\/2\.0 403/);
      raw.sendRaw(refer(`;tag=${sipToken()}`));
      const unknown = await raw.waitFor((m) => /^SIP\/2\.0 [2-6]/.test(m.startLine) && m !== outside);
      assert.match(unknown.startLine, /^SIP\/2\.0 481/);
    } finally {
      raw.close();
    }
  });

  test('INVITE with Replaces: the new caller takes the named party\'s place, that party gets BYE', { timeout: 30_000 }, async () => {
    const { a, a2, b } = phones;
    const id = await bridged(a, b, '7105');
    const ids = a.dialogIds!;
    const since = Date.now();
    await a2.call('sip:7105@ferry.local', via(), { headers: [`Replaces: ${ids.callId};to-tag=${ids.remoteTag};from-tag=${ids.localTag}`] });
    await a.waitForRequest('BYE', 5000, since);
    await a.media.stopMedia();
    const switched = Date.now();
    await hears(a2, switched, 'RTP from B at the replacing caller');
    await hears(b, switched, 'RTP from the replacing caller at B');
    assert.equal(b.received.filter((m) => m.method === 'INVITE' && m.at >= since).length, 0, 'B saw nothing of it');
    const r = await record(id);
    assert.deepEqual(r.transfers?.map((t) => [t.kind, t.left, t.stayed, t.joined]), [['replaces', 'a', 'b', 'a2']]);
    assert.equal(r.caller.party, 'a2');
    // a Replaces naming no dialog here: 481
    await assert.rejects(a.call('sip:7105@ferry.local', via(), { headers: ['Replaces: nothing-here;to-tag=1;from-tag=2'] }), (err: { status?: number }) => err.status === 481);
    await hangUpAndZero(a2, b);
  });
});
