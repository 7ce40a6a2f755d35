/**
 * The CPU one WebRTC call set-up costs ferry media: `bin/ferry media` (one thread by default,
 * FERRY_MEDIA_WORKERS=1) answers werift browsers (bench/media/load/webrtc-peer-worker.ts, their own processes)
 * through the real kurento-client, gateway-shaped: MediaPipeline, WebRtcEndpoint + RtpEndpoint connected both
 * ways, RtpEndpoint.processOffer, WebRtcEndpoint.processOffer, gatherCandidates with the candidates trickled to
 * the browser, until the browser's PeerConnection is connected (ICE + DTLS). Calls are set up in bursts of
 * `--burst` at a time; after each burst they are released. ferry media's CPU (user + system, all its threads,
 * from /proc/<pid>/stat) is read before and after each burst's set-up and after its release, so the figure is
 * CPU per set-up, not wall time: it holds on a loaded machine where wall time does not.
 *
 *   node --import tsx bench/media/webrtc-setup-cpu.ts [--calls 50] [--burst 10] [--warmup 10] [--up 0] [--profile] [--media-env K=V,...]
 *
 * The phone side of each call is a UDP socket of this process that only drains what ferry media sends it, so
 * no RTP is relayed towards ferry media; the browsers send 50 packets/s from DTLS connected until their burst is
 * released (a few packets per call, counted in the set-up window). `--up N` first sets up N calls that stay up
 * (their browsers then close, so they carry no media) to measure set-up with N calls in the server. `--profile` takes a V8 CPU profile of ferry
 * media over the set-up windows only (the profiler costs CPU too: read CPU figures from a run without it).
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LoadWorker } from './load/load-worker';
import type { StreamSpec } from './load/worker-protocol';
import type { KurentoClientInstance, KurentoIceCandidate, KurentoPipeline } from './kurento/kurento-types';
import type { FerryMediaHarness } from './phases/ferry-media-harness';
import { defaultResultsDir, mediaServerPid, parseBenchArgs, resultsDirHarness, runBench, type StandaloneBenchOptions } from './phases/standalone-media-bench';
import { summarizeCpuProfiles } from './report/cpu-profile-summary';
import { phoneSdp } from './sdp/phone-sdp';

const CONNECT_TIMEOUT_MS = 20000;
const TICK_MS = 1000 / 100; // USER_HZ: /proc reports CPU in 1/100 s

interface Options extends StandaloneBenchOptions {
  calls: number;
  burst: number;
  warmup: number;
  up: number;
  browsers: number;
  profile: boolean;
}

const USAGE = `usage: node --import tsx bench/media/webrtc-setup-cpu.ts [options]
  --calls 50          measured set-ups (default 50)
  --burst 10          set-ups at a time (default 10); each burst is released before the next
  --warmup 10         set-ups before the measured ones (JIT, first-use costs; default 10)
  --up 0              calls set up first and kept (their browsers closed: no media) while the measured ones run
  --browsers 2        werift browser processes (default 2)
  --profile           V8 CPU profile of ferry media over the measured set-up windows (inflates the CPU figures)
  --media-env K=V,... extra environment for ferry media (default FERRY_MEDIA_WORKERS=1)
  --out DIR           results directory (default /tmp/webrtc-setup-cpu-<time>)`;

function parse(argv: string[]): Options {
  const o: Options = {
    calls: 50,
    burst: 10,
    warmup: 10,
    up: 0,
    browsers: 2,
    profile: false,
    mediaEnv: { FERRY_MEDIA_WORKERS: '1' },
    out: defaultResultsDir('webrtc-setup-cpu'),
  };
  parseBenchArgs(argv, USAGE, o, (a, v) => {
    if (a === '--calls') o.calls = Number(v());
    else if (a === '--burst') o.burst = Number(v());
    else if (a === '--warmup') o.warmup = Number(v());
    else if (a === '--up') o.up = Number(v());
    else if (a === '--browsers') o.browsers = Number(v());
    else if (a === '--profile') o.profile = true;
    else return false;
    return true;
  });
  for (const [k, n] of [['--calls', o.calls], ['--burst', o.burst], ['--browsers', o.browsers]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`${k} must be a positive integer`);
  }
  if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new Error('--warmup must be 0 or more');
  if (!Number.isInteger(o.up) || o.up < 0) throw new Error('--up must be 0 or more');
  return o;
}

/** CPU ms (user + system) of a process (all threads) and of its main thread, from /proc. */
function cpuMs(pid: number): { process: number; main: number } {
  const ticks = (file: string): number => {
    const stat = readFileSync(file, 'utf8');
    // fields after the ")" that closes the command name: utime and stime are the 12th and 13th
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  };
  return { process: ticks(`/proc/${pid}/stat`) * TICK_MS, main: ticks(`/proc/${pid}/task/${pid}/stat`) * TICK_MS };
}

interface Call {
  pipeline?: KurentoPipeline;
  browser: LoadWorker;
  streamId: number;
}

async function setUp(kurento: KurentoClientInstance, call: Call, phonePort: number): Promise<void> {
  const spec: StreamSpec = { streamId: call.streamId, direction: 0, ssrc: (0x20000000 + call.streamId) >>> 0 };
  const offer = await call.browser.request<string>({ op: 'offer', stream: spec, lean: true });
  const pipeline = await kurento.create('MediaPipeline');
  call.pipeline = pipeline;
  const [webrtc, rtp] = await Promise.all([pipeline.create('WebRtcEndpoint'), pipeline.create('RtpEndpoint')]);
  webrtc.on('IceCandidateFound', (ev) => {
    const c = ev.candidate as KurentoIceCandidate | undefined;
    if (!c?.candidate) return;
    call.browser
      .request({ op: 'candidate', streamId: call.streamId, candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null })
      .catch(() => undefined);
  });
  await Promise.all([webrtc.connect(rtp), rtp.connect(webrtc)]);
  await rtp.processOffer(phoneSdp(phonePort, call.streamId));
  const answer = await webrtc.processOffer(offer);
  await call.browser.request({ op: 'answer', streamId: call.streamId, sdp: answer });
  await webrtc.gatherCandidates();
  await call.browser.request({ op: 'waitConnected', streamId: call.streamId, timeoutMs: CONNECT_TIMEOUT_MS });
}

async function release(calls: Call[]): Promise<void> {
  await Promise.all(calls.map((c) => c.pipeline?.release().catch(() => undefined)));
  const byBrowser = new Map<LoadWorker, number[]>();
  for (const c of calls) byBrowser.set(c.browser, [...(byBrowser.get(c.browser) ?? []), c.streamId]);
  await Promise.all([...byBrowser].map(([w, ids]) => w.request({ op: 'close', streamIds: ids }).catch(() => undefined)));
}

/** Wait until /stats shows only the calls kept up (releases are acknowledged before sockets finish closing). */
async function settled(harness: FerryMediaHarness, up: { pipelines: number; elements: number; boundPorts: number }): Promise<void> {
  for (let i = 0; i < 40; i++) {
    const s = await harness.stats();
    if (s && s.pipelines === up.pipelines && s.elements === up.elements && s.boundPorts === up.boundPorts) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`ferry media did not return to ${JSON.stringify(up)} pipelines / elements / bound ports after a release`);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const harness = resultsDirHarness(o.out, { profile: o.profile, env: o.mediaEnv });
  const browsers = Array.from({ length: o.browsers }, (_, i) => new LoadWorker('webrtc-peer', `setup-cpu-werift${i}`));
  const phone: Socket = createSocket('udp4');
  phone.on('message', () => undefined);
  await new Promise<void>((r) => phone.bind(0, '127.0.0.1', () => r()));
  const phonePort = phone.address().port;
  let streamId = 0;
  let nextBrowser = 0;
  const bursts: { calls: number; setupCpu: number; setupMain: number; releaseCpu: number; wallMs: number; callMs: number[] }[] = [];
  try {
    await harness.start();
    const pid = mediaServerPid(harness.server.pid);
    const kurento = harness.kurento();
    let up = { pipelines: 0, elements: 0, boundPorts: 0 };
    const runBurst = async (n: number, measured: boolean): Promise<void> => {
      const calls: Call[] = Array.from({ length: n }, () => ({ browser: browsers[nextBrowser++ % browsers.length]!, streamId: ++streamId }));
      if (measured && o.profile) await harness.profiler?.start();
      const c0 = cpuMs(pid);
      const t0 = performance.now();
      const callMs: number[] = [];
      const timed = async (c: Call): Promise<void> => {
        const s0 = performance.now();
        await setUp(kurento, c, phonePort);
        callMs.push(performance.now() - s0);
      };
      const results = await Promise.allSettled(calls.map(timed));
      const wallMs = performance.now() - t0;
      const c1 = cpuMs(pid);
      if (measured && o.profile) await harness.profiler?.stop(path.join(o.out, `setup-${bursts.length}.cpuprofile`));
      await release(calls);
      await settled(harness, up);
      const c2 = cpuMs(pid);
      const failed = results.filter((r) => r.status === 'rejected');
      if (failed.length > 0) throw new Error(`${failed.length} of ${n} set-ups failed: ${String((failed[0] as PromiseRejectedResult).reason)}`);
      if (measured) bursts.push({ calls: n, setupCpu: c1.process - c0.process, setupMain: c1.main - c0.main, releaseCpu: c2.process - c1.process, wallMs, callMs });
    };
    for (let done = 0; done < o.up; done += o.burst) {
      const calls: Call[] = Array.from({ length: Math.min(o.burst, o.up - done) }, () => ({ browser: browsers[nextBrowser++ % browsers.length]!, streamId: ++streamId }));
      await Promise.all(calls.map((c) => setUp(kurento, c, phonePort)));
      await Promise.all(calls.map((c) => c.browser.request({ op: 'close', streamIds: [c.streamId] })));
    }
    if (o.up > 0) {
      const s = await harness.stats();
      up = { pipelines: Number(s?.pipelines), elements: Number(s?.elements), boundPorts: Number(s?.boundPorts) };
      process.stdout.write(`${o.up} calls up (browsers closed): ${JSON.stringify(up)}\n`);
    }
    for (let done = 0; done < o.warmup; done += o.burst) await runBurst(Math.min(o.burst, o.warmup - done), false);
    for (let done = 0; done < o.calls; done += o.burst) await runBurst(Math.min(o.burst, o.calls - done), true);

    const calls = bursts.reduce((n, b) => n + b.calls, 0);
    const sum = (k: 'setupCpu' | 'setupMain' | 'releaseCpu'): number => bursts.reduce((n, b) => n + b[k], 0);
    const lines = [
      `ferry media ${Object.entries(o.mediaEnv).map(([k, v]) => `${k}=${v}`).join(' ')}, ${calls} set-ups in bursts of ${o.burst} (after ${o.warmup} warm-up) with ${o.up} other calls up, ${o.browsers} werift browser processes${o.profile ? ', PROFILED (CPU inflated)' : ''}`,
      `set-up CPU per call: ${(sum('setupCpu') / calls).toFixed(1)} ms (process), ${(sum('setupMain') / calls).toFixed(1)} ms (main thread); burst median ${median(bursts.map((b) => b.setupCpu / b.calls)).toFixed(1)} ms`,
      `release CPU per call: ${(sum('releaseCpu') / calls).toFixed(1)} ms (process)`,
      `burst wall time p50: ${median(bursts.map((b) => b.wallMs)).toFixed(0)} ms; one call's set-up (its browser's offer to its DTLS connected) p50 ${median(bursts.flatMap((b) => b.callMs)).toFixed(0)} ms (wall time depends on the machine's load; CPU much less)`,
    ];
    if (o.profile) lines.push('', summarizeCpuProfiles([o.out], path.resolve(__dirname, '..', '..'), 30));
    const report = lines.join('\n');
    process.stdout.write(`${report}\n\nresults: ${o.out}\n`);
    writeFileSync(path.join(o.out, 'results.json'), JSON.stringify({ options: o, bursts }, null, 2));
  } finally {
    phone.close();
    await Promise.all(browsers.map((b) => b.stop()));
    await harness.stop();
  }
}

runBench(main);
