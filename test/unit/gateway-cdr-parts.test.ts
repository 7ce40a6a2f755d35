import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, appendFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { audioCodec, buildCdr, type Cdr } from '../../src/gateway/cdr/cdr';
import { csvCell, csvHeader, csvRow, CSV_COLUMNS } from '../../src/gateway/cdr/cdr-csv';
import { parseCdrQuery } from '../../src/gateway/cdr/cdr-api';
import { callEndedData } from '../../src/gateway/events/call-event-data';
import { CdrFileStore } from '../../src/gateway/cdr/cdr-file-store';
import { MemoryCdrStore } from '../../src/gateway/cdr/cdr-store';
import { endpointStatsFrom, legQuality, mosFromR, rFactor } from '../../src/gateway/cdr/quality';
import { parseSipConfig } from '../../src/gateway/config/sip-config-loader';
import { recordingFiles, resolveRecordingFile } from '../../src/gateway/recording/recording-files';
import { shouldRecord } from '../../src/gateway/recording/recording-policy';
import { interleavedSize, interleaveWavs, wavHeader } from '../../src/gateway/recording/wav-channels';
import type { CallRecord } from '../../src/gateway/state/call-record';
import { rng } from '../helpers/seeded-random';

/**
 * The CDR and recording parts without a network: the E-model figures, getStats parsing, the CDR
 * built from a record (end decided at 'ending', codec from the SDP), CSV cells (quoting, formula
 * prefix) parsed back, CDR query validation, the JSON-lines store (append, time range, paging, a torn
 * line), recording file names (no way out of the directory), the record policy and sip-config's
 * `record`, and the 2-channel WAV merge of two mono WAVs of different lengths.
 */

function record(over: Partial<CallRecord> = {}): CallRecord {
  return {
    id: '6f1c2d4e-0000-4000-8000-000000000001',
    state: 'ended',
    createdAt: 1_000,
    answeredAt: 3_000,
    endedAt: 10_400,
    caller: { uri: 'sip:desk@10.0.0.1', kind: 'rtp', party: 'desk', localSdp: 'v=0\r\nm=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n', dialog: { callId: 'abc@desk' } as never },
    callee: { uri: 'sip:200@10.0.0.2', kind: 'rtp', party: 'pstn' },
    media: { mediaUrl: 'ws://x' },
    owner: 'gw',
    reason: 'sip-bye',
    endedBy: 'callee',
    timeline: [
      { t: 1_500, event: 'ringing' },
      { t: 3_000, event: 'answered' },
      { t: 10_000, event: 'ending' },
    ],
    ...over,
  };
}

/** RFC 4180 parse (as a spreadsheet would) */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (q) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') q = false;
      else cell += c;
    } else if (c === '"') q = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\r' && text[i + 1] === '\n') row.push(cell), rows.push(row), (row = []), (cell = ''), i++;
    else cell += c;
  }
  return rows;
}

describe('CDR and recording parts', { timeout: 30_000 }, () => {
  test('E-model: R and MOS for G.711', { timeout: 5_000 }, () => {
    assert.equal(Math.round(rFactor(0, 20) * 100) / 100, 92.72);
    assert.ok(Math.abs(mosFromR(92.72) - 4.40) < 0.01, String(mosFromR(92.72)));
    assert.ok(rFactor(1, 20) < rFactor(0, 20) && rFactor(5, 20) < rFactor(1, 20), 'loss lowers R');
    assert.ok(rFactor(0, 300) < rFactor(0, 170) - 10, 'past 177.3 ms the delay costs more');
    assert.equal(mosFromR(-5), 1);
    assert.equal(mosFromR(120), 4.5);
    const q = legQuality('ep1', { inbound: { ssrc: '1', packetsReceived: 950, packetsLost: 50, jitter: 0.004 }, outbound: { ssrc: '2', packetsSent: 1000, packetsLost: 10, roundTripTime: 0.08 } }, 5, true);
    assert.equal(q.lossPercent, 5);
    assert.equal(q.jitterMs, 4);
    assert.equal(q.rttMs, 80);
    assert.ok(q.mos < 4 && q.mos > 2, String(q.mos));
    assert.deepEqual(
      endpointStatsFrom({ a_inbound: { type: 'inboundrtp', ssrc: '7', packetsReceived: 3, packetsLost: 0, jitter: 0.001 }, a_outbound: { type: 'outboundrtp', ssrc: '8', packetsSent: 4 }, junk: 5 }),
      { inbound: { ssrc: '7', packetsReceived: 3, packetsLost: 0, jitter: 0.001 }, outbound: { ssrc: '8', packetsSent: 4 } },
    );
    const empty = legQuality('ep', endpointStatsFrom(undefined), 1, false);
    assert.equal(empty.packetsReceived, 0);
    assert.equal(empty.lossPercent, 0);
    // stats answered, but nothing of the party's audio ever arrived: total loss and the lowest MOS, not 4.4
    const silent = legQuality('ep', { inbound: { ssrc: '9', packetsReceived: 0, packetsLost: 0 }, outbound: { ssrc: '10', packetsSent: 0 } }, 1, true);
    assert.equal(silent.lossPercent, 100);
    assert.ok(silent.mos < 1.5 && silent.rFactor < 20, `MOS ${silent.mos} R ${silent.rFactor}`);
  });

  test('a CDR from a call record: end decided at "ending", durations, codec, SIP Call-IDs', { timeout: 5_000 }, () => {
    const cdr = buildCdr(record({ tags: { crm: '1' } }), { gatewayId: 'gw', quality: {} });
    assert.equal(cdr.endedAt, 10_000);
    assert.equal(cdr.releasedAt, 10_400);
    assert.equal(cdr.ringMs, 1_500);
    assert.equal(cdr.talkMs, 7_000);
    assert.equal(cdr.durationMs, 9_000);
    assert.equal(cdr.codec, 'PCMA');
    assert.deepEqual(cdr.sipCallIds, { caller: 'abc@desk' });
    assert.deepEqual(cdr.tags, { crm: '1' });
    const unanswered = buildCdr(record({ answeredAt: undefined, timeline: [{ t: 1_500, event: 'ringing' }, { t: 4_000, event: 'ending' }] }), { gatewayId: 'gw', quality: {} });
    assert.equal(unanswered.talkMs, 0);
    assert.equal(unanswered.ringMs, 2_500);
    assert.equal(unanswered.answered, false);
    const ref = { url: '/api/recordings/x', format: 'wav' as const, sampleRate: 8000 as const, files: { caller: 'a', callee: 'b' }, startedAt: 3_001 };
    assert.deepEqual(buildCdr(record({ recording: ref }), { gatewayId: 'adopter', quality: {} }).recording, ref, 'an adopted call names the recording kept on its record');
    assert.equal(buildCdr(record(), { gatewayId: 'gw', quality: {} }).recording, undefined);
    assert.equal(audioCodec('m=audio 1 RTP/AVP 0 101\r\n'), 'PCMU');
    assert.equal(audioCodec(undefined), undefined);
  });

  test('the call.ended event gives the same end and durations as the CDR (end decided at "ending"), and the release time', { timeout: 5_000 }, () => {
    // the release (BYEs answered, pipeline released) ends 400 ms after the end was decided
    const r = record();
    const cdr = buildCdr(r, { gatewayId: 'gw', quality: {} });
    const ev = callEndedData(r);
    for (const k of ['endedAt', 'ringMs', 'talkMs', 'durationMs', 'releasedAt'] as const) assert.equal(ev[k], cdr[k], k);
    assert.equal(ev.endedAt, 10_000);
    assert.equal(ev.talkMs, 7_000);
    assert.equal(ev.releasedAt, 10_400);
    // a record without an 'ending' entry: its end is the record's end, as in the CDR
    const bare = record({ timeline: [{ t: 1_500, event: 'ringing' }] });
    assert.equal(callEndedData(bare).endedAt, 10_400);
    assert.equal(buildCdr(bare, { gatewayId: 'gw', quality: {} }).endedAt, 10_400);
  });

  test('CSV: quoting and formula prefixes, parsed back; random cells survive', { timeout: 5_000 }, () => {
    assert.equal(csvCell('=1+2'), "'=1+2");
    assert.equal(csvCell('+44 20'), "'+44 20");
    assert.equal(csvCell('-x'), "'-x");
    assert.equal(csvCell('@SUM(A1)'), "'@SUM(A1)");
    assert.equal(csvCell('a,"b"\nc'), '"a,""b""\nc"');
    assert.equal(csvCell(-3), '-3', 'numbers are numbers');
    assert.equal(csvCell(undefined), '');
    const cdr = buildCdr(record({ tags: { note: '=HYPERLINK("http://evil")', 'x,y': 'a\r\nb' } }), { gatewayId: 'gw', quality: {} });
    const rows = parseCsv(csvHeader() + csvRow(cdr));
    assert.equal(rows.length, 2);
    assert.equal(rows[0]!.length, CSV_COLUMNS.length);
    assert.equal(rows[1]!.length, CSV_COLUMNS.length);
    const row = Object.fromEntries(rows[0]!.map((h, i) => [h, rows[1]![i]!]));
    assert.equal(row.call_id, cdr.callId);
    assert.deepEqual(JSON.parse(row.tags!), cdr.tags, 'the tags cell round-trips (JSON does not start with a formula sign)');
    const rnd = rng(12);
    const alphabet = '=+-@,"\r\n\tab ';
    for (let i = 0; i < 500; i++) {
      let s = '';
      for (let j = Math.floor(rnd() * 12); j > 0; j--) s += alphabet[Math.floor(rnd() * alphabet.length)];
      const back = parseCsv(`${csvCell(s)}\r\n`)[0]![0]!;
      assert.equal(/^[=+\-@\t\r]/.test(s) ? `'${s}` : s, back, JSON.stringify(s));
      assert.ok(!/^[=+\-@]/.test(back), 'no cell starts a formula');
    }
  });

  test('query: times, limits, format, unknown parameters name the field', { timeout: 5_000 }, () => {
    const q = parseCdrQuery(new URLSearchParams('from=2026-12-01T00:00:00Z&to=1796169600000&limit=5&offset=10'), 0);
    assert.deepEqual(q, { from: Date.parse('2026-12-01T00:00:00Z'), to: 1796169600000, limit: 5, offset: 10, format: 'json' });
    for (const [qs, field] of [['from=soon', 'from'], ['from=5&to=5', 'to'], ['limit=0', 'limit'], ['limit=1001', 'limit'], ['offset=-1', 'offset'], ['format=xml', 'format'], ['x=1', 'x']] as const) {
      assert.throws(() => parseCdrQuery(new URLSearchParams(qs), 100), (e: { status?: number; extra?: { field?: string } }) => e.status === 400 && e.extra?.field === field, qs);
    }
    assert.equal(parseCdrQuery(new URLSearchParams('format=csv&limit=5000'), 0).limit, 5000);
  });

  test('JSON-lines store: appended lines, time range, paging, a torn line skipped; memory store the same', { timeout: 10_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-cdr-unit-'));
    try {
      const file = path.join(dir, 'sub', 'cdrs.jsonl');
      const store = new CdrFileStore(file);
      const memory = new MemoryCdrStore(3);
      assert.deepEqual(await store.list({ from: 0, to: 1e15, offset: 0, limit: 10 }), { cdrs: [] }, 'no file yet');
      const cdrs: Cdr[] = [];
      for (let i = 0; i < 5; i++) {
        const c = buildCdr(record({ id: `6f1c2d4e-0000-4000-8000-00000000000${i}`, timeline: [{ t: 3_000, event: 'answered' }, { t: 10_000 + i, event: 'ending' }] }), { gatewayId: 'gw', quality: {} });
        cdrs.push(c);
      }
      await Promise.all(cdrs.map((c) => store.write(c)));
      for (const c of cdrs) await memory.write(c);
      appendFileSync(file, '{"callId":"torn","endedAt":');
      assert.equal(readFileSync(file, 'utf8').split('\n').length, 6);
      const page1 = await store.list({ from: 10_001, to: 10_004, offset: 0, limit: 2 });
      assert.deepEqual(page1.cdrs.map((c) => c.endedAt), [10_001, 10_002]);
      assert.equal(page1.nextOffset, 2);
      const page2 = await store.list({ from: 10_001, to: 10_004, offset: 2, limit: 2 });
      assert.deepEqual(page2.cdrs.map((c) => c.endedAt), [10_003]);
      assert.equal(page2.nextOffset, undefined);
      assert.equal((await store.get(cdrs[4]!.callId))?.endedAt, 10_004);
      assert.equal(await store.get('torn'), undefined);
      // a store opening a file whose last line was torn (a crash) closes that line before its first CDR
      const reopened = new CdrFileStore(file);
      await reopened.write(buildCdr(record({ id: '6f1c2d4e-0000-4000-8000-0000000000ff' }), { gatewayId: 'gw', quality: {} }));
      assert.equal((await reopened.get('6f1c2d4e-0000-4000-8000-0000000000ff'))?.endedAt, 10_000);
      await reopened.close();
      assert.deepEqual((await memory.list({ from: 0, to: 1e15, offset: 0, limit: 10 })).cdrs.map((c) => c.endedAt), [10_002, 10_003, 10_004], 'memory keeps the last 3');
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('recording names: made from the call id only; a CDR naming anything else is refused', { timeout: 5_000 }, () => {
    const files = recordingFiles('6f1c2d4e-0000-4000-8000-000000000001', Date.parse('2026-12-02T10:00:00Z'));
    assert.deepEqual(files, { caller: 'recordings/2026-12-02/6f1c2d4e-0000-4000-8000-000000000001-caller.wav', callee: 'recordings/2026-12-02/6f1c2d4e-0000-4000-8000-000000000001-callee.wav' });
    assert.throws(() => recordingFiles('../x', 0));
    assert.equal(resolveRecordingFile('/srv/media', files.caller), `/srv/media/${files.caller}`);
    for (const bad of ['../etc/passwd', '/etc/passwd', 'recordings/2026-12-02/../../x-caller.wav', 'recordings/2026-12-02/a-caller.wav/..', 'prompts/x.wav', 'recordings/2026-12-02/a b-caller.wav']) {
      assert.equal(resolveRecordingFile('/srv/media', bad), undefined, bad);
    }
  });

  test('record policy: the record flag, a recorded user; sip-config record on users and routes', { timeout: 5_000 }, () => {
    assert.equal(shouldRecord(record(), { users: [] }), false);
    assert.equal(shouldRecord(record({ record: true }), { users: [] }), true);
    assert.equal(shouldRecord(record(), { users: [{ user: 'pstn', password: 'x', record: true }] }), true);
    assert.equal(shouldRecord(record(), { users: [{ user: 'other', password: 'x', record: true }] }), false);
    const cfg = parseSipConfig(JSON.stringify({ domain: 'd', users: [{ user: 'a', password: 'p', record: true }], trunks: [], routes: [{ match: '.*', to: 'user', record: true }] }), 'f.json');
    assert.equal(cfg.users[0]!.record, true);
    assert.equal(cfg.routes[0]!.record, true);
    assert.throws(() => parseSipConfig(JSON.stringify({ domain: 'd', users: [{ user: 'a', password: 'p', record: 'yes' }], trunks: [] }), 'f.json'), /users\[0\]\.record/);
  });

  test('2-channel merge of two mono WAVs of different lengths (the shorter padded with silence)', { timeout: 10_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-wav-unit-'));
    try {
      const mono = (name: string, samples: number[]): string => {
        const data = Buffer.alloc(samples.length * 2);
        samples.forEach((s, i) => data.writeInt16LE(s, i * 2));
        const file = path.join(dir, name);
        writeFileSync(file, Buffer.concat([wavHeader(1, 8000, data.length), data]));
        return file;
      };
      const left = mono('l.wav', Array.from({ length: 9000 }, (_, i) => (i % 100) + 1));
      const right = mono('r.wav', Array.from({ length: 10 }, () => -7));
      const out = Buffer.concat(await (async () => {
        const parts: Buffer[] = [];
        for await (const b of interleaveWavs(left, right)) parts.push(b);
        return parts;
      })());
      assert.equal(out.length, await interleavedSize(left, right));
      assert.equal(out.length, 44 + 9000 * 4);
      assert.equal(out.readUInt16LE(22), 2, 'two channels');
      assert.equal(out.readUInt32LE(40), 9000 * 4);
      assert.equal(out.readInt16LE(44), 1);
      assert.equal(out.readInt16LE(46), -7);
      assert.equal(out.readInt16LE(44 + 8999 * 4), 100);
      assert.equal(out.readInt16LE(44 + 8999 * 4 + 2), 0, 'padded');
      // random and mangled headers: rejected with an Error or read within the file, never a hang or a crash
      const rnd = rng(7);
      const good = readFileSync(left);
      for (let i = 0; i < 300; i++) {
        const bytes = i % 2 === 0 ? Buffer.from(Array.from({ length: Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256))) : Buffer.from(good.subarray(0, 44 + Math.floor(rnd() * 100)));
        if (i % 2 === 1) for (let k = 0; k < 4; k++) bytes[Math.floor(rnd() * 44)] = Math.floor(rnd() * 256);
        const f = path.join(dir, 'fuzz.wav');
        writeFileSync(f, bytes);
        try {
          const size = await interleavedSize(f, f);
          assert.ok(size >= 44 && size <= 44 + bytes.length * 2, `size ${size} for ${bytes.length} bytes`);
        } catch (err) {
          assert.ok(err instanceof Error);
        }
      }
      writeFileSync(path.join(dir, 'bad.wav'), 'RIFF0000WAVEjunk');
      await assert.rejects(async () => {
        for await (const _ of interleaveWavs(left, path.join(dir, 'bad.wav'))) void _;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
