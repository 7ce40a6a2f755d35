import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Ringing a user's registrations at once (docs/gateway.md, "A call", step 2) under races: the caller's
 * CANCEL crossing a registration's 200, and a registration that answers after the caller's CANCEL. The
 * caller gets exactly one final response to its INVITE (a 200 or a 487, never both), the registration
 * that answered too late is ACKed and hung up, and nothing is left: no pipeline, element or port in
 * ferry media, no dialog or pending request in ferry sip. Real ferry sip, gateway and ferry media; the
 * caller is a raw UDP socket (a trunk) so every response it gets is counted; the user's phones are
 * scripted UDP phones.
 */
const PASSWORD = 'ring-race-secret';

interface Msg {
  start: string;
  header(name: string): string | undefined;
}

function parse(text: string): Msg {
  const head = text.split('\r\n\r\n')[0]!.split('\r\n');
  return {
    start: head[0] ?? '',
    header(name) {
      const l = head.find((h) => h.toLowerCase().startsWith(`${name.toLowerCase()}:`));
      return l?.slice(l.indexOf(':') + 1).trim();
    },
  };
}

describe('ring-all races: CANCEL against the winning 200, a 200 after the CANCEL', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  let raw: dgram.Socket;
  let rawPort = 0;
  const received: Msg[] = [];
  const desks = [0, 1].map(() => new SipPhone(new RtpPhone(), { user: 'amy', address: '127.0.0.2', ring: true }));

  before(async () => {
    raw = dgram.createSocket('udp4');
    await new Promise<void>((r) => raw.bind(0, '127.0.0.1', () => r()));
    rawPort = raw.address().port;
    raw.on('message', (d) => {
      const m = parse(d.toString('utf8'));
      received.push(m);
      // the gateway's BYE (a call cancelled once it was answered) gets its 200
      if (m.start.startsWith('BYE ')) {
        raw.send(Buffer.from(['SIP/2.0 200 OK', ...['Via', 'From', 'To', 'Call-ID', 'CSeq'].map((h) => `${h}: ${m.header(h)}`), 'Content-Length: 0', '', ''].join('\r\n')), stack.sipPort, '127.0.0.1');
      }
    });
    for (const desk of desks) await desk.start();
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-ringrace-'));
    const file = path.join(dir, 'ferry.json');
    await writeFile(file, JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'amy', password: PASSWORD }],
      trunks: [{ name: 'raw', address: `127.0.0.1:${rawPort}`, transport: 'udp', acceptFrom: [`127.0.0.1:${rawPort}`] }],
      routes: [{ match: '.*', to: 'user' }],
    }));
    stack = await startStack({
      partEnv: {
        gateway: { FERRY_SIP_CONFIG: file, FERRY_CALL_RECORD_TTL_MS: '60000', FERRY_NO_ANSWER_MS: '20000', FERRY_RING: 'all' },
        sip: { FERRY_SIP_STATS_INTERVAL_MS: '200' },
      },
    });
    for (const desk of desks) await desk.register({ host: '127.0.0.1', port: stack.sipPort }, PASSWORD);
  });

  after(async () => {
    if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.join('\n'));
    raw?.close();
    for (const desk of desks) await desk.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const calls = async (): Promise<CallRecord[]> => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls;
  const sipCounts = (): { dialogs: number; pending: number } | undefined => {
    const line = [...stack.output].reverse().find((l) => l.startsWith('[sip] ferry sip stats '));
    return line ? (JSON.parse(line.slice('[sip] ferry sip stats '.length)) as { dialogs: number; pending: number }) : undefined;
  };
  async function backToZero(): Promise<void> {
    await waitFor(async () => {
      const s = await getJson<{ pipelines: number; elements: number; boundPorts: number }>(stack.mediaPort, '/stats');
      return s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0;
    }, 5000, 25, 'ferry media back to no pipeline, element or bound port');
    await waitFor(() => {
      const c = sipCounts();
      return !!c && c.dialogs === 0 && c.pending === 0;
    }, 5000, 50, `ferry sip back to no dialog and no pending request (last: ${JSON.stringify(sipCounts())})`);
  }

  /** the raw caller's INVITE to amy; resolves once both phones ring */
  async function dial(): Promise<{ callId: string; cancel(): void; finals(): number[]; id: string }> {
    const known = new Set((await calls()).map((c) => c.id));
    const callId = randomBytes(8).toString('hex');
    const branch = `z9hG4bK${randomBytes(6).toString('hex')}`;
    const uri = 'sip:amy@ferry.local';
    const sdp = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';
    const common = [`Via: SIP/2.0/UDP 127.0.0.1:${rawPort};branch=${branch};rport`, 'Max-Forwards: 70', `From: <sip:raw@127.0.0.1:${rawPort}>;tag=${randomBytes(4).toString('hex')}`, `To: <${uri}>`, `Call-ID: ${callId}`];
    const send = (lines: string[]): void => void raw.send(Buffer.from(lines.join('\r\n')), stack.sipPort, '127.0.0.1');
    send([`INVITE ${uri} SIP/2.0`, ...common, 'CSeq: 1 INVITE', `Contact: <sip:raw@127.0.0.1:${rawPort}>`, 'Content-Type: application/sdp', `Content-Length: ${sdp.length}`, '', sdp]);
    await waitFor(() => desks.every((d) => d.ringing), 5000, 5, 'both of amy\'s phones ring');
    const id = (await waitFor(async () => (await calls()).find((c) => !known.has(c.id)), 5000, 25, 'the new call')).id;
    const finals = (): number[] => [...new Set(received.filter((m) => m.header('Call-ID') === callId && m.header('CSeq') === '1 INVITE' && !/^SIP\/2\.0 1/.test(m.start)).map((m) => Number(m.start.split(' ')[1])))];
    return {
      callId, id, finals,
      cancel: () => send([`CANCEL ${uri} SIP/2.0`, ...common, 'CSeq: 1 CANCEL', 'Content-Length: 0', '', '']),
    };
  }

  /** ACKs the caller's final response (a 2xx in its own transaction, else in the INVITE's) */
  function ack(callId: string): void {
    const final = received.find((m) => m.header('Call-ID') === callId && m.header('CSeq') === '1 INVITE' && !/^SIP\/2\.0 1/.test(m.start))!;
    const status = Number(final.start.split(' ')[1]);
    const via = status >= 300 ? final.header('Via')! : `SIP/2.0/UDP 127.0.0.1:${rawPort};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`;
    const target = status >= 300 ? 'sip:amy@ferry.local' : (/<([^>]+)>/.exec(final.header('Contact') ?? '')?.[1] ?? 'sip:amy@ferry.local');
    raw.send(Buffer.from([`ACK ${target} SIP/2.0`, `Via: ${via}`, 'Max-Forwards: 70', `From: ${final.header('From')}`, `To: ${final.header('To')}`, `Call-ID: ${callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n')), stack.sipPort, '127.0.0.1');
  }

  /** the caller hangs up an answered call (BYE in the dialog of its 200) */
  function bye(callId: string): void {
    const final = received.find((m) => m.header('Call-ID') === callId && m.header('CSeq') === '1 INVITE' && /^SIP\/2\.0 2/.test(m.start))!;
    const target = /<([^>]+)>/.exec(final.header('Contact') ?? '')?.[1] ?? 'sip:amy@ferry.local';
    raw.send(Buffer.from([`BYE ${target} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${rawPort};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`, 'Max-Forwards: 70', `From: ${final.header('From')}`, `To: ${final.header('To')}`, `Call-ID: ${callId}`, 'CSeq: 2 BYE', 'Content-Length: 0', '', ''].join('\r\n')), stack.sipPort, '127.0.0.1');
  }

  test('R1: the caller\'s CANCEL and a registration\'s 200 sent at once, eighteen times with the order shifted: one final response each time (200 or 487), the answer hung up when the CANCEL won, nothing left', { timeout: 90_000 }, async () => {
    const seen: string[] = [];
    for (const shiftMs of [0, 0, 1, 2, -1, -2, -3, -4, -5, -6, -7, -8, -9, -11, -13, -15, -40, -100]) {
      const since = Date.now();
      const c = await dial();
      // the CANCEL may reach the phone first: then it stops ringing and never answers (a race the CANCEL won outright)
      let answered = false;
      const answer = async (): Promise<void> => {
        if (!desks[1]!.ringing) return;
        answered = true;
        await desks[1]!.answerRinging();
      };
      if (shiftMs >= 0) {
        c.cancel();
        if (shiftMs > 0) await new Promise((r) => setTimeout(r, shiftMs));
        await answer();
      } else {
        await answer();
        await new Promise((r) => setTimeout(r, -shiftMs));
        c.cancel();
      }
      await waitFor(() => c.finals().length > 0, 5000, 5, 'the caller\'s final response');
      ack(c.callId);
      // a CANCEL after the caller's 200 comes too late (RFC 3261 9.2): the call is up, and the caller hangs up
      const settled = await waitFor(async () => {
        const rec = await getJson<CallRecord>(stack.httpPort, `/api/calls/${c.id}`);
        return rec.state === 'ended' || rec.state === 'answered' ? rec : undefined;
      }, 10_000, 25, 'the call ended or answered');
      const cancelWon = settled.state === 'ended';
      if (!cancelWon) {
        assert.deepEqual(c.finals(), [200]);
        bye(c.callId);
      }
      const r = await waitFor(async () => {
        const rec = await getJson<CallRecord>(stack.httpPort, `/api/calls/${c.id}`);
        return rec.state === 'ended' ? rec : undefined;
      }, 10_000, 25, 'the call ended');
      // the phone that answered is hung up however the race went (BYE after its 200), the other cancelled
      if (answered) await desks[1]!.waitForRequest('BYE', 5000, since);
      else await desks[1]!.waitForRequest('CANCEL', 5000, since);
      await desks[1]!.media.stopMedia();
      await desks[0]!.waitForRequest('CANCEL', 5000, since);
      await backToZero();
      assert.equal(c.finals().length, 1, `one final response to the INVITE, got ${c.finals().join(', ')}`);
      assert.ok([200, 487].includes(c.finals()[0]!), String(c.finals()[0]));
      if (cancelWon) assert.equal(r.reason, 'sip-cancel', `finals ${c.finals().join(',')}: ${r.timeline.map((e) => `${e.event}(${e.detail ?? ''})`).join(', ')}`);
      const crossed = r.timeline.some((e) => e.event === 'cancel' && e.detail === 'from caller, crossing the answer');
      seen.push(`${c.finals()[0]}${crossed ? '(crossed)' : ''}`);
    }
    console.log(`# finals over the rounds: ${seen.join(' ')}`);
  });

  test('R2: a registration that ignores the CANCEL and answers after the caller got 487 is ACKed and hung up; nothing left', { timeout: 30_000 }, async () => {
    const since = Date.now();
    const c = await dial();
    desks[1]!.ignoreCancel = true;
    try {
      c.cancel();
      await waitFor(() => c.finals().length > 0, 5000, 5, 'the caller\'s final response');
      assert.deepEqual(c.finals(), [487]);
      ack(c.callId);
      await desks[1]!.waitForRequest('CANCEL', 5000, since);
      await desks[0]!.waitForRequest('CANCEL', 5000, since);
      await desks[1]!.answerRinging();
      await desks[1]!.waitForRequest('ACK', 5000, since);
      await desks[1]!.waitForRequest('BYE', 5000, since);
      await desks[1]!.media.stopMedia();
      await backToZero();
      assert.deepEqual(c.finals(), [487], 'still one final response');
    } finally {
      desks[1]!.ignoreCancel = false;
    }
  });
});
