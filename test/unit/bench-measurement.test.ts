/**
 * The benchmark's measuring parts (bench/media): if these are wrong, every number in
 * docs/benchmarks.md is wrong. Packet stamps, per-epoch loss accounting, percentiles, /proc parsing,
 * the loop-lag file reader, and the rtp-peer load worker counting real UDP packets.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LogHistogram, percentileOf } from '../../bench/media/load/log-histogram';
import { StreamMeter } from '../../bench/media/load/stream-meter';
import { createPacketBuffer, readStamp, rtpPayload, stampNext, PACKET_BYTES } from '../../bench/media/load/stream-stamp';
import { LoadWorker } from '../../bench/media/load/load-worker';
import { parseProcStat, sampleProcesses } from '../../bench/media/servers/proc-sampler';
import { readLoopLag } from '../../bench/media/probe/loop-lag-reader';
import { parseOptions } from '../../bench/media/cli-options';
import { pollUntil, realTimePause } from '../helpers/wait-for';

describe('bench stream stamp', () => {
  test('a stamped RTP packet survives a header rewrite and reads back', { timeout: 30_000 }, () => {
    const buf = createPacketBuffer(0xdeadbeef, 4242, 1);
    stampNext(buf, 70000, 3, 123456789n);
    assert.equal(buf.length, PACKET_BYTES);
    assert.equal(buf.readUInt16BE(2), 70000 & 0xffff);
    // A media server rewrites SSRC / sequence / timestamp / PT: the stamp lives in the payload.
    buf.writeUInt32BE(1, 8);
    buf.writeUInt16BE(9, 2);
    buf[1] = 8;
    const payload = rtpPayload(buf);
    assert.ok(payload);
    assert.equal(payload.length, 160);
    assert.deepEqual(readStamp(payload), { streamId: 4242, epoch: 3, direction: 1, sentAtNs: 123456789n });
  });

  test('RTCP, short packets and foreign payloads are not counted as stamped RTP', { timeout: 30_000 }, () => {
    const rr = Buffer.from([0x81, 201, 0, 7, 0, 0, 0, 1, ...new Array<number>(24).fill(0)]);
    assert.equal(rtpPayload(rr), undefined);
    assert.equal(rtpPayload(Buffer.alloc(5)), undefined);
    const plain = Buffer.alloc(172, 0xff);
    plain[0] = 0x80;
    assert.equal(readStamp(rtpPayload(plain)!), undefined);
  });

  test('payload offset skips CSRCs and a header extension', { timeout: 30_000 }, () => {
    const stamped = createPacketBuffer(1, 77, 0);
    stampNext(stamped, 1, 1, 5n);
    const ext = Buffer.from([0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00]);
    const csrc = Buffer.alloc(4, 0x11);
    const header = Buffer.from(stamped.subarray(0, 12));
    header[0] = 0x80 | 0x10 | 0x01; // X=1, CC=1
    const pkt = Buffer.concat([header, csrc, ext, stamped.subarray(12)]);
    assert.equal(readStamp(rtpPayload(pkt)!)?.streamId, 77);
  });
});

describe('bench stream meter', () => {
  test('loss is counted per epoch, so packets in flight at a window edge are not lost', { timeout: 30_000 }, () => {
    const sender = new StreamMeter();
    const receiver = new StreamMeter();
    const buf = createPacketBuffer(9, 1, 0);
    for (let seq = 0; seq < 10; seq++) {
      stampNext(buf, seq, 2, process.hrtime.bigint());
      sender.onSent(2, 0, 1);
      // Packet 9 arrives "after the window closed": it still belongs to epoch 2.
      if (seq !== 4) receiver.onReceived(rtpPayload(buf)!, process.hrtime.bigint());
    }
    sender.onSent(0, 0, 1); // epoch 0 is never counted
    assert.deepEqual(sender.report(2).sent, [10, 0]);
    assert.deepEqual(sender.report(2).sentByStream, [[1, 10]]);
    const r = receiver.report(2);
    assert.deepEqual(r.received, [9, 0]);
    assert.equal(r.streamsHeard, 1);
    assert.deepEqual(r.receivedByStream, [[1, 9]]);
    assert.equal(new LogHistogram(r.latencyCounts).total, 9);
    assert.deepEqual(receiver.report(3).received, [0, 0]);
  });
});

describe('bench percentiles', () => {
  test('nearest-rank percentile and the log histogram agree within a bucket', { timeout: 30_000 }, () => {
    const values = Array.from({ length: 1000 }, (_, i) => i + 1);
    assert.equal(percentileOf(values, 50), 500);
    assert.equal(percentileOf(values, 99), 990);
    assert.equal(percentileOf([], 99), undefined);
    const h = new LogHistogram();
    for (const v of values) h.record(v);
    const p99 = h.percentile(99)!;
    assert.ok(p99 >= 990 && p99 <= 990 * 1.06, `p99 ${p99}`);
    const merged = new LogHistogram();
    merged.merge(h);
    merged.merge(h);
    assert.equal(merged.total, 2000);
    assert.equal(merged.percentile(50), h.percentile(50));
  });
});

describe('bench /proc sampling', () => {
  test('parses a stat line whose command name holds spaces and parentheses', { timeout: 30_000 }, () => {
    const line =
      '4242 (node (ferry) x) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 125 0 0 20 0 11 0 1000 123456789 5000 18446744073709551615';
    const st = parseProcStat(line);
    assert.equal(st.pid, 4242);
    assert.equal(st.ppid, 17);
    assert.equal(st.utime, 2.5);
    assert.equal(st.stime, 1.25);
    assert.ok(st.rssBytes >= 5000 * 4096);
  });

  test('CPU of a busy process grows as much as the process itself counts', { timeout: 30_000 }, () => {
    const a = sampleProcesses([process.pid], false);
    const c0 = process.cpuUsage();
    const deadline = performance.now() + 10000; // the machine is shared: burn 0.2 s of CPU, however long it takes
    let x = 0;
    while (performance.now() < deadline) {
      for (let i = 0; i < 1e5; i++) x += Math.sqrt(x + i);
      const c = process.cpuUsage(c0);
      if (c.user + c.system >= 200_000) break;
    }
    const c = process.cpuUsage(c0);
    const b = sampleProcesses([process.pid], false);
    const procS = b.user + b.system - (a.user + a.system);
    const selfS = (c.user + c.system) / 1e6;
    assert.ok(selfS >= 0.2, `burned ${selfS} s (${x > 0})`);
    assert.ok(Math.abs(procS - selfS) < 0.05, `/proc says ${procS} s, process.cpuUsage ${selfS} s`);
    assert.ok(b.rssBytes > 10 * 1048576);
  });
});

describe('bench loop-lag reader', () => {
  test('takes the window and reports the worst process', { timeout: 30_000 }, () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-lag-'));
    const file = path.join(dir, 'lag.jsonl');
    const lines = [
      { t: 10_000, pid: 1, lagUs: [100000] }, // before the window
      { t: 12_000, pid: 1, lagUs: Array.from({ length: 100 }, (_, i) => i * 100) },
      { t: 12_000, pid: 2, lagUs: [50, 60, 70] },
      'not json',
    ];
    writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n'));
    const lag = readLoopLag(file, 11_000, 13_000);
    assert.ok(lag);
    assert.equal(lag.samples, 100);
    assert.equal(lag.p99Ms, 9.8);
    assert.equal(lag.maxMs, 9.9);
    assert.equal(readLoopLag(path.join(dir, 'missing'), 0, 1), undefined);
  });
});

describe('bench options', () => {
  test('quick mode and clear errors for bad options', { timeout: 30_000 }, () => {
    assert.deepEqual(parseOptions(['--quick']).steps, [25, 50]);
    assert.deepEqual(parseOptions(['--steps', '10,20', '--targets', 'rtpengine']).targets, ['rtpengine']);
    assert.throws(() => parseOptions(['--steps', '20,10']), /increasing/);
    assert.throws(() => parseOptions(['--targets', 'kms']), /unknown target/);
    assert.throws(() => parseOptions(['--bogus']), /unknown option --bogus/);
  });
});

describe('bench rtp-peer load worker', () => {
  test('sends 50 packets/s to its target and counts what comes back, per epoch', { timeout: 30_000 }, async () => {
    const worker = new LoadWorker('rtp-peer', 'unit');
    const echo = dgram.createSocket('udp4');
    try {
      await new Promise<void>((r) => echo.bind(0, '127.0.0.1', () => r()));
      let echoed = 0;
      echo.on('message', (msg, rinfo) => {
        echoed++;
        echo.send(msg, rinfo.port, rinfo.address);
      });
      const [opened] = await worker.request<{ streamId: number; port: number }[]>({
        op: 'open',
        streams: [{ streamId: 5, direction: 0, ssrc: 55 }],
      });
      assert.ok(opened && opened.port % 2 === 0, 'RTP on an even port');
      await worker.request({ op: 'target', streamId: 5, host: '127.0.0.1', port: echo.address().port });
      const t0 = performance.now();
      await worker.request({ op: 'epoch', epoch: 1 });
      // a real-time case: the pacer's rate is measured over one second of real time (test-hygiene lists it)
      await realTimePause(1000);
      await worker.request({ op: 'epoch', epoch: 0 });
      const seconds = (performance.now() - t0) / 1000;
      // every echo of epoch 1 comes back (loopback, nothing lost): wait for the count, not a guessed time
      const rep = await pollUntil(async () => { const r = await worker.report(1); return r.sent[0] > 0 && r.received[0] === r.sent[0] ? r : undefined; },
        { timeoutMs: 5_000, what: 'the echoes of epoch 1' });
      // 50 packets/s; on a starved machine the pacer skips (and counts) rather than bursts: relative to the
      // slots that passed, never an absolute count a slow machine would miss
      assert.ok(rep.sent[0] > 0, `sent ${rep.sent[0]} in ${seconds.toFixed(2)} s`);
      assert.ok(rep.sent[0] + rep.skipped <= 50 * seconds + 3, `sent ${rep.sent[0]} + skipped ${rep.skipped} in ${seconds.toFixed(2)} s`);
      assert.ok(rep.sent[0] + rep.skipped >= 50 * seconds * 0.5, `every slot is sent or counted as skipped: ${rep.sent[0]} + ${rep.skipped} in ${seconds.toFixed(2)} s`);
      assert.equal(rep.received[0], rep.sent[0], 'every echoed packet of epoch 1 counted');
      assert.ok(echoed >= rep.sent[0]);
      assert.equal(rep.streamsHeard, 1);
    } finally {
      echo.close();
      await worker.stop();
    }
  });
});
