import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { MediaServerProcess } from '../helpers/media-server-process';
import { RawRpc } from '../helpers/media-raw-rpc';
import { rawRpcRtpPair } from '../helpers/media-rtp-pair';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { isRunning } from '../helpers/process-tree';

/**
 * F8: a stray promise rejection and an uncaught exception inside a running `ferry media` (injected
 * by a test-only preload on SIGUSR2) are each logged on one line and counted in /stats
 * `processFaults`; the process keeps its pid, and a call's RTP keeps flowing through it — packets
 * counted before and after, the longest gap measured, no leg ended.
 */
const INJECTOR = path.join(__dirname, '..', 'helpers', 'process-fault-injector.ts');
const PACKET_INTERVAL_MS = 20;
const MAX_GAP_MS = 500;

describe('F8: stray faults inside ferry media', { timeout: 60_000 }, () => {
  let media: MediaServerProcess;
  let rpc: RawRpc;
  const peers: RtpTestPeer[] = [];
  before(async () => {
    media = await MediaServerProcess.start({ NODE_OPTIONS: `--require tsx/cjs --require ${INJECTOR}`, FERRY_MEDIA_DEAD_MS: '15000' });
    rpc = await RawRpc.open(media.url);
  });
  after(async () => {
    await rpc?.close();
    peers.forEach((p) => p.close());
    await media?.stop();
  });

  test('F8: a stray rejection and an exception are logged and counted; pid kept; another call\'s RTP keeps flowing', async () => {
    const pid = media.pid!;
    const { p, pa, pb } = await rawRpcRtpPair(rpc, peers, { subscribeEnded: true });

    // a steady 50 packets/s stream a → b through ferry media, arrival times recorded at b
    const arrivals: number[] = [];
    pb.socket.on('message', () => arrivals.push(Date.now()));
    let sent = 0;
    const sender = setInterval(() => pa.send(0, Buffer.from(`audio-${sent++}`)), PACKET_INTERVAL_MS);
    try {
      await pb.waitFor(() => pb.received.length >= 25, 10_000, '25 packets before the faults');
      const before = await media.stats();
      assert.deepEqual(before.processFaults, { unhandledRejection: 0, uncaughtException: 0, guardedCallback: 0 }, 'positive control: none yet');

      const injectedAt = Date.now();
      const receivedAtInjection = pb.received.length;
      process.kill(pid, 'SIGUSR2');
      const { stats } = await media.waitForStats((s) => {
        const f = s.processFaults as Record<string, number> | undefined;
        return !!f && f.unhandledRejection >= 1 && f.uncaughtException >= 1;
      }, 5000);
      assert.deepEqual(stats.processFaults, { unhandledRejection: 1, uncaughtException: 1, guardedCallback: 0 });

      // media keeps flowing: 50 more packets (1 s of audio) after the faults were counted
      const receivedAfterFaults = pb.received.length;
      await pb.waitFor(() => pb.received.length >= receivedAfterFaults + 50, 10_000, '50 packets after the faults');
      const window = arrivals.filter((t) => t >= injectedAt - 200);
      let maxGap = 0;
      for (let i = 1; i < window.length; i++) maxGap = Math.max(maxGap, window[i]! - window[i - 1]!);
      process.stdout.write(`# F8: ${receivedAtInjection} packets before, ${pb.received.length - receivedAtInjection} after the faults; longest gap ${maxGap} ms\n`);
      assert.ok(maxGap < MAX_GAP_MS, `longest gap in the stream around the faults: ${maxGap} ms`);

      assert.equal(media.pid, pid, 'same process');
      assert.ok(isRunning(pid));
      assert.deepEqual(rpc.notifications, [], 'no leg ended');
      assert.deepEqual((await rpc.ok('ping')).value, 'pong', 'the control session is still served');

      const faultLines = media.logsMatching('process fault survived').map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(faultLines.map((l) => l.kind).sort(), ['uncaughtException', 'unhandledRejection'], media.log());
      assert.ok(faultLines.some((l) => l.error === 'Error: injected stray rejection'));
      assert.ok(faultLines.some((l) => l.error === 'Error: injected uncaught exception'));
      for (const l of faultLines) assert.equal(l.component, 'media');
    } finally {
      clearInterval(sender);
    }
    await rpc.ok('release', { object: p.value });
    await media.waitForStats((s) => s.pipelines === 0 && s.boundPorts === 0, 5000);
  });
});
