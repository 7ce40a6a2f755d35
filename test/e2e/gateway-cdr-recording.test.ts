import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dominantFrequency } from '../helpers/audio-tone';
import { RtpPhone } from '../helpers/rtp-phone';
import { SipPhone } from '../helpers/sip-phone';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import type { Cdr } from '../../src/gateway/cdr/cdr';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * CDRs and call recording on the real stack (ferry sip, ferry media, a gateway on Redis) with two
 * scripted SIP phones, each sending its own PCMU tone (A 600 Hz, B 1400 Hz) behind two trunks; the
 * route to B records. A call A -> B ended by A's BYE: its CDR (from /api/cdrs, Redis, and the
 * FERRY_CDR_FILE line) has the durations the test measured within 100 ms, reason sip-bye by the caller,
 * both SIP Call-IDs, non-zero packets, jitter and RTT per leg, and a MOS; the CSV export parses back to
 * the same figures; the recording served by /api/recordings is read by sox: 2 channels, its length
 * within 5 % of the talk time, channel 1 dominated by A's tone and channel 2 by B's. Then a call whose
 * media server is stopped mid-call (SIGTERM): the call ends on the gateway's media-lost path, its CDR
 * carries the last periodic quality sample, and its WAV is complete and readable.
 */

const TONE_A = 600;
const TONE_B = 1400;
const TONE_C = 1000;

function sox(args: string[]): { stdout: Buffer; stderr: string } {
  const r = spawnSync('sox', args, { maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`sox ${args.join(' ')} failed (${r.status}): ${r.stderr.toString()}`);
  return { stdout: r.stdout, stderr: r.stderr.toString() };
}

/** what sox reads in a WAV: channels, seconds, and each channel's samples */
function soxRead(file: string): { channels: number; seconds: number; rate: number; channel: (n: number) => Int16Array } {
  const info = (flag: string): string => sox(['--i', flag, file]).stdout.toString().trim();
  return {
    channels: Number(info('-c')),
    seconds: Number(info('-D')),
    rate: Number(info('-r')),
    channel: (n) => {
      const raw = sox([file, '-t', 's16', '-c', '1', '-', 'remix', String(n)]).stdout;
      const out = new Int16Array(raw.length / 2);
      for (let i = 0; i < out.length; i++) out[i] = raw.readInt16LE(i * 2);
      return out;
    },
  };
}

/** RFC 4180 CSV (quoted cells, doubled quotes, CRLF) into rows of cells */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += c;
  }
  if (cell !== '' || row.length > 0) rows.push([...row, cell]);
  return rows;
}

describe('CDRs and call recording on the real stack', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  const phoneA = new SipPhone(new RtpPhone({ rtcpIntervalMs: 500, toneHz: TONE_A }), { user: 'agent' });
  const phoneB = new SipPhone(new RtpPhone({ rtcpIntervalMs: 500, toneHz: TONE_B }), { user: 'customer' });
  const phoneC = new SipPhone(new RtpPhone({ rtcpIntervalMs: 500, toneHz: TONE_C }), { user: 'expert' });

  const fetchApi = (p: string, token = TEST_API_TOKEN): Promise<Response> =>
    fetch(`http://127.0.0.1:${stack.httpPort}${p}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });

  const cdrOf = (id: string): Promise<Cdr> =>
    waitFor(async () => (await getJson<{ cdrs: Cdr[] }>(stack.httpPort, '/api/cdrs?limit=1000')).cdrs.find((c) => c.callId === id), 10_000, 50, `the CDR of ${id}`);

  /** A calls 9200 (B, through the recording route); resolves once RTP flows both ways, with the test's answer time and the call id */
  async function callAB(): Promise<{ id: string; answeredAt: number }> {
    const since = Date.now();
    await phoneA.call(`sip:9200@127.0.0.1:${stack.sipPort}`, { host: '127.0.0.1', port: stack.sipPort });
    const answeredAt = Date.now();
    const live = await waitFor(async () => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls')).calls.find((c) => c.createdAt >= since - 1000 && c.state === 'answered'), 5000, 20, 'the answered call');
    await waitFor(async () => (await phoneA.media.rtpReceivedBetween(answeredAt, Date.now())) > 10 && (await phoneB.media.rtpReceivedBetween(answeredAt, Date.now())) > 10, 10_000, 20, 'RTP at both phones');
    return { id: live.id, answeredAt };
  }

  async function recordingFile(id: string, name: string): Promise<string> {
    const res = await fetchApi(`/api/recordings/${id}`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get('content-type'), 'audio/wav');
    const file = path.join(dir, name);
    writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    return file;
  }

  before(async () => {
    const a = `127.0.0.1:${await phoneA.start()}`;
    const b = `127.0.0.1:${await phoneB.start()}`;
    const c = `127.0.0.1:${await phoneC.start()}`;
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-cdr-'));
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'alice', password: 'alice-secret-1' }],
      trunks: [{ name: 'desk', address: a, transport: 'udp', acceptFrom: [a] }, { name: 'pstn', address: b, transport: 'udp', acceptFrom: [b] }, { name: 'third', address: c, transport: 'udp', acceptFrom: [c] }],
      routes: [{ match: '9(\\d+)', to: 'trunk:pstn', rewrite: '$1', record: true }, { match: '8(\\d+)', to: 'trunk:desk', rewrite: '$1' }, { match: '7(\\d+)', to: 'trunk:pstn', rewrite: '$1' }, { match: '5(\\d+)', to: 'trunk:third', rewrite: '$1' }],
    }));
    stack = await startStack({
      redisUrl: 'redis://127.0.0.1:6379',
      env: { FERRY_MEDIA_FILES_DIR: path.join(dir, 'media') },
      partEnv: {
        gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'), FERRY_CDR_FILE: path.join(dir, 'cdrs.jsonl'), FERRY_CDR_STATS_INTERVAL_MS: '500' },
        media: { FERRY_MEDIA_RTCP_INTERVAL_MS: '500' },
      },
    });
  });

  after(async () => {
    await phoneA.close();
    await phoneB.close();
    await phoneC.close();
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a recorded call ended by the caller: CDR durations, reason, quality; CSV; the 2-channel WAV', { timeout: 60_000 }, async () => {
    const { id, answeredAt } = await callAB();
    const sipCallIds = { caller: phoneA.dialogIds!.callId, callee: phoneB.dialogIds!.callId };
    // talk until each side has had RTCP round trips measured (reports every 0.5 s both ways)
    await waitFor(async () => Date.now() - answeredAt > 2500 && (await phoneA.media.stats()).rtcpReceived >= 3 && (await phoneB.media.stats()).rtcpReceived >= 3, 10_000, 20, 'RTCP at both phones');
    const byeAt = await phoneA.hangup();
    const talkMs = byeAt - answeredAt;

    const cdr = await cdrOf(id);
    assert.equal(cdr.reason, 'sip-bye');
    assert.equal(cdr.endedBy, 'caller');
    assert.equal(cdr.answered, true);
    assert.deepEqual(cdr.sipCallIds, sipCallIds);
    assert.equal(cdr.caller.party, 'desk');
    assert.equal(cdr.callee.party, 'pstn');
    assert.equal(cdr.codec, 'PCMU');
    assert.ok(Math.abs(cdr.talkMs - talkMs) <= 100, `CDR talk ${cdr.talkMs} ms vs measured ${talkMs} ms`);
    assert.ok(Math.abs(cdr.answeredAt! - answeredAt) <= 100, `answered ${cdr.answeredAt} vs ${answeredAt}`);
    assert.ok(Math.abs(cdr.endedAt - byeAt) <= 100, `ended ${cdr.endedAt} vs BYE ${byeAt}`);
    assert.ok(cdr.ringMs >= 0 && cdr.ringMs < 1000, `ring ${cdr.ringMs}`);
    for (const side of ['caller', 'callee'] as const) {
      const q = cdr.quality[side];
      assert.ok(q, `quality of the ${side} leg`);
      assert.equal(q.final, true, `${side}: sampled on the end path`);
      assert.ok(q.packetsReceived > 50 && q.packetsSent > 50, `${side} packets ${q.packetsReceived}/${q.packetsSent}`);
      assert.ok(q.jitterMs > 0, `${side} jitter ${q.jitterMs}`);
      // a round trip was measured (an RR came back naming ferry's SR); on loopback it is below one unit of
      // RTCP's 1/65536 s clock as often as not, so 0 is a real measurement here, not a missing one
      assert.ok(q.rttMs !== undefined && q.rttMs >= 0 && q.rttMs < 100, `${side} RTT ${q.rttMs}`);
      assert.ok(q.ssrcIn && q.ssrcOut, `${side} SSRCs`);
      assert.ok(q.mos > 4 && q.mos <= 4.5 && q.rFactor > 85, `${side} MOS ${q.mos} R ${q.rFactor} (loopback, no loss)`);
    }
    // what each phone sent is what ferry media received on that leg (a few packets in flight at the end)
    const sentA = (await phoneA.media.stats()).rtpSent;
    assert.ok(Math.abs(cdr.quality.caller!.packetsReceived - sentA) <= 10, `caller leg received ${cdr.quality.caller!.packetsReceived}, phone A sent ${sentA}`);

    // the same CDR in the JSON-lines file (one line) and in Redis' order by end time
    const lines = await waitFor(() => {
      const all = readFileSync(path.join(dir, 'cdrs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Cdr);
      return all.some((c) => c.callId === id) ? all : undefined;
    }, 5000, 20, 'the CDR line in FERRY_CDR_FILE');
    assert.deepEqual(lines.filter((c) => c.callId === id), [cdr]);
    const inRange = await getJson<{ cdrs: Cdr[] }>(stack.httpPort, `/api/cdrs?from=${cdr.endedAt}&to=${cdr.endedAt + 1}`);
    assert.deepEqual(inRange.cdrs.map((c) => c.callId), [id]);
    assert.equal((await getJson<{ cdrs: Cdr[] }>(stack.httpPort, `/api/cdrs?to=${cdr.endedAt}`)).cdrs.filter((c) => c.callId === id).length, 0, 'to is exclusive');

    // CSV export parsed back
    const csvRes = await fetchApi(`/api/cdrs?format=csv&from=${cdr.endedAt}&to=${cdr.endedAt + 1}`);
    assert.equal(csvRes.status, 200);
    assert.match(csvRes.headers.get('content-type') ?? '', /^text\/csv/);
    const rows = parseCsv(await csvRes.text());
    assert.equal(rows.length, 2, 'header + one row');
    const row = Object.fromEntries(rows[0]!.map((h, i) => [h, rows[1]![i]!]));
    assert.equal(row.call_id, id);
    assert.equal(row.caller_sip_call_id, sipCallIds.caller);
    assert.equal(Number(row.talk_ms), cdr.talkMs);
    assert.equal(row.reason, 'sip-bye');
    assert.equal(row.ended_by, 'caller');
    assert.equal(row.ended_at, new Date(cdr.endedAt).toISOString());
    assert.equal(Number(row.caller_packetsReceived), cdr.quality.caller!.packetsReceived);
    assert.equal(Number(row.callee_mos), cdr.quality.callee!.mos);
    assert.equal(row.recording_url, `/api/recordings/${id}`);

    // the recording: 2 channels, the talk time long, A's tone on channel 1 and B's on channel 2
    assert.equal(cdr.recording?.url, `/api/recordings/${id}`);
    const wav = soxRead(await recordingFile(id, 'bye.wav'));
    assert.equal(wav.channels, 2);
    assert.equal(wav.rate, 8000);
    assert.ok(Math.abs(wav.seconds * 1000 - cdr.talkMs) <= 0.05 * cdr.talkMs, `WAV ${wav.seconds} s vs talk ${cdr.talkMs} ms`);
    const left = dominantFrequency(wav.channel(1), 8000);
    const right = dominantFrequency(wav.channel(2), 8000);
    assert.ok(Math.abs(left.hz - TONE_A) <= 20, `channel 1 (caller) ${left.hz} Hz`);
    assert.ok(Math.abs(right.hz - TONE_B) <= 20, `channel 2 (callee) ${right.hz} Hz`);
    // one party's mono file
    const mono = await fetchApi(`/api/recordings/${id}?party=callee`);
    assert.equal(mono.status, 200);
    writeFileSync(path.join(dir, 'callee.wav'), Buffer.from(await mono.arrayBuffer()));
    assert.equal(soxRead(path.join(dir, 'callee.wav')).channels, 1);

    // API rules: token, unknown id, bad query
    assert.equal((await fetchApi('/api/cdrs', '')).status, 401);
    assert.equal((await fetchApi(`/api/recordings/${id}`, '')).status, 401);
    assert.equal((await fetchApi('/api/recordings/00000000-0000-0000-0000-000000000000')).status, 404);
    assert.equal((await fetchApi('/api/recordings/..%2F..%2Fetc%2Fpasswd')).status, 404);
    const bad = await fetchApi('/api/cdrs?from=yesterday');
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { field: string }).field, 'from');
  });

  test('POST /api/calls with record: true (through routes that do not record): recorded, its CDR names the recording', { timeout: 30_000 }, async () => {
    const res = await fetch(`http://127.0.0.1:${stack.httpPort}/api/calls`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ a: '8100', b: '7200', record: true, tags: { ticket: '=cmd' } }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    const id = ((await res.json()) as { id: string }).id;
    await waitFor(async () => (await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`)).state === 'answered', 15_000, 20, 'the originated call answered');
    const since = Date.now();
    await waitFor(async () => (await phoneA.media.rtpReceivedBetween(since, Date.now())) > 25 && (await phoneB.media.rtpReceivedBetween(since, Date.now())) > 25, 10_000, 20, 'RTP at both phones');
    const del = await fetch(`http://127.0.0.1:${stack.httpPort}/api/calls/${id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
    assert.equal(del.status, 200);
    const cdr = await cdrOf(id);
    assert.equal(cdr.reason, 'api-hangup');
    assert.equal(cdr.endedBy, 'gateway');
    assert.deepEqual(cdr.tags, { ticket: '=cmd' });
    assert.equal(cdr.recording?.url, `/api/recordings/${id}`);
    const wav = soxRead(await recordingFile(id, 'api.wav'));
    assert.equal(wav.channels, 2);
    assert.ok(Math.abs(wav.seconds * 1000 - cdr.talkMs) <= 0.05 * cdr.talkMs + 50, `WAV ${wav.seconds} s vs talk ${cdr.talkMs} ms`);
    // the originated call's caller leg is party A (phone A, 600 Hz)
    assert.ok(Math.abs(dominantFrequency(wav.channel(1), 8000).hz - TONE_A) <= 20);
    assert.ok(Math.abs(dominantFrequency(wav.channel(2), 8000).hz - TONE_B) <= 20);
    const csv = await (await fetchApi(`/api/cdrs?format=csv&from=${cdr.endedAt}&to=${cdr.endedAt + 1}`)).text();
    assert.match(csv, /,"?\{""ticket"":""=cmd""\}"?/, 'the tags cell is JSON (a formula sign inside is harmless)');
  });

  test('a recorded call transferred by the API: the callee channel goes on with the new party', { timeout: 30_000 }, async () => {
    const { id, answeredAt } = await callAB();
    await waitFor(() => Date.now() - answeredAt > 1000, 5000, 20, 'a second with B');
    const moved = await fetch(`http://127.0.0.1:${stack.httpPort}/api/calls/${id}/transfer`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ target: '5400', keep: 'caller' }),
    });
    assert.equal(moved.status, 200, await moved.clone().text());
    const movedAt = Date.now();
    await waitFor(async () => (await phoneC.media.rtpReceivedBetween(movedAt, Date.now())) > 25 && (await phoneA.media.rtpReceivedBetween(movedAt, Date.now())) > 25, 10_000, 20, 'RTP between A and C');
    await waitFor(() => Date.now() - movedAt > 1500, 5000, 20, 'over a second with C');
    await phoneA.hangup();
    const cdr = await cdrOf(id);
    assert.equal(cdr.transfers.length, 1, JSON.stringify(cdr.transfers));
    assert.equal(cdr.callee.party, 'third');
    const wav = soxRead(await recordingFile(id, 'transfer.wav'));
    assert.ok(Math.abs(wav.seconds * 1000 - cdr.talkMs) <= 0.05 * cdr.talkMs + 50, `WAV ${wav.seconds} s vs talk ${cdr.talkMs} ms`);
    const callee = wav.channel(2);
    const at = (ms: number): Int16Array => callee.subarray(Math.floor((ms / 1000) * 8000), Math.floor((ms / 1000) * 8000) + 4000);
    assert.ok(Math.abs(dominantFrequency(at(200), 8000).hz - TONE_B) <= 20, 'B at the start of the callee channel');
    const end = wav.seconds * 1000;
    assert.ok(Math.abs(dominantFrequency(at(end - 800), 8000).hz - TONE_C) <= 20, `C at the end of the callee channel (${dominantFrequency(at(end - 800), 8000).hz} Hz)`);
    assert.ok(Math.abs(dominantFrequency(wav.channel(1), 8000).hz - TONE_A) <= 20, 'A all along on the caller channel');
  });

  test('media server stopped mid-call: media-lost end, CDR with the last periodic quality, WAV finalised', { timeout: 60_000 }, async () => {
    const { id, answeredAt } = await callAB();
    await waitFor(() => Date.now() - answeredAt > 2000, 5000, 20, 'two seconds of talk');
    const killedAt = Date.now();
    await stack.kill('media', 'SIGTERM');
    const cdr = await cdrOf(id);
    assert.equal(cdr.endedBy, 'media');
    assert.equal(cdr.reason, 'media-lost');
    for (const side of ['caller', 'callee'] as const) {
      const q = cdr.quality[side];
      assert.ok(q && q.packetsReceived > 25, `${side}: a quality sample from the call (${JSON.stringify(q)})`);
      assert.equal(q.final, false, `${side}: the end-path sample found no media server; the last periodic one is kept`);
    }
    const wav = soxRead(await recordingFile(id, 'lost.wav'));
    const recordedMs = killedAt - answeredAt;
    assert.equal(wav.channels, 2);
    assert.ok(Math.abs(wav.seconds * 1000 - recordedMs) <= 0.05 * recordedMs + 100, `WAV ${wav.seconds} s vs ${recordedMs} ms until the media server stopped`);
    assert.ok(Math.abs(dominantFrequency(wav.channel(1), 8000).hz - TONE_A) <= 20);
    assert.ok(Math.abs(dominantFrequency(wav.channel(2), 8000).hz - TONE_B) <= 20);
    if (phoneA.inCall) await phoneA.hangup().catch(() => undefined);
  });
});
