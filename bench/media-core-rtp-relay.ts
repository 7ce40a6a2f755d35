/**
 * Quick CPU check of ferry media's RTP relay path (h1, media core): N RtpEndpoint<->RtpEndpoint calls
 * through `bin/ferry media` (a child process), G.711-sized packets at 50 pps each way, measured over
 * 10 s from /proc/<pid>/stat. Not a test; the full benchmark is `npm run bench:media`.
 *
 *   node --import tsx bench/media-core-rtp-relay.ts [calls=100]
 *
 * With `--micro`: no server; the per-packet relay items one at a time, each before/after, in this
 * process (bench/media/relay-micro.ts), printed as a markdown table:
 *
 *   node --import tsx bench/media-core-rtp-relay.ts --micro [--iterations 2000000] [--before-src <dir>/src]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { call, connectKurento, type KurentoObjectLike } from '../test/helpers/media-kurento';
import { RtpTestPeer } from '../test/helpers/media-rtp-test-peer';

const argv = process.argv.slice(2);
const N = Number(argv.find((a) => /^\d+$/.test(a)) ?? 100);

function flag(name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  // ferry media's memory settings on its own command line (as `ferry start` gives them): one process, so
  // /proc/<pid>/stat below is the server's own CPU, not that of bin/ferry's idle relaunch parent
  const env = { ...process.env, FERRY_MEDIA_PORT: '0', FERRY_LOG_LEVEL: 'warn' };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const memory = require(path.join(__dirname, '..', 'bin', 'ferry-media-memory.js')) as {
    mediaStartSettings(env: NodeJS.ProcessEnv, execArgv: string[]): { nodeOptions: string[]; env: Record<string, string> };
  };
  const settings = memory.mediaStartSettings(env, []);
  const child = spawn(process.execPath, [...settings.nodeOptions, path.join(__dirname, '..', 'bin', 'ferry'), 'media'], {
    env: { ...env, ...settings.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port: number = await new Promise((resolve) => child.stdout!.once('data', (d) => resolve(JSON.parse(String(d).split('ready ')[1]!).port)));
  const client = await connectKurento(`ws://127.0.0.1:${port}/kurento`);
  const pairs: [RtpTestPeer, RtpTestPeer][] = [];
  for (let i = 0; i < N; i++) {
    const p = await client.create('MediaPipeline');
    const a = await call<KurentoObjectLike>(p, 'create', 'RtpEndpoint');
    const b = await call<KurentoObjectLike>(p, 'create', 'RtpEndpoint');
    const pa = await RtpTestPeer.open();
    const pb = await RtpTestPeer.open();
    pa.useRemoteSdp(await call<string>(a, 'processOffer', pa.sdp()));
    pb.useRemoteSdp(await call<string>(b, 'processOffer', pb.sdp()));
    await call(a, 'connect', b);
    await call(b, 'connect', a);
    pairs.push([pa, pb]);
  }
  const cpuSeconds = () => {
    const f = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  };
  const payload = Buffer.alloc(160, 0x55);
  let sent = 0;
  const start = Date.now();
  const timer = setInterval(() => {
    // catch up on timer drift so each call really sends 50 pps each way
    const due = Math.floor(((Date.now() - start) / 20) * 2 * N);
    while (sent < due) {
      const [pa, pb] = pairs[(sent >> 1) % N]!;
      (sent & 1 ? pb : pa).send(0, payload);
      sent++;
    }
  }, 5);
  const received = () => pairs.reduce((n, [a, b]) => n + a.received.length + b.received.length, 0);
  await new Promise((r) => setTimeout(r, 2000));
  const c0 = cpuSeconds();
  const t0 = Date.now();
  const s0 = sent;
  const r0 = received();
  await new Promise((r) => setTimeout(r, 10000));
  const c1 = cpuSeconds();
  const t1 = Date.now();
  const s1 = sent;
  clearInterval(timer);
  await new Promise((r) => setTimeout(r, 500));
  const r1 = received();
  const secs = (t1 - t0) / 1000;
  console.log(
    JSON.stringify({
      calls: N,
      packetsPerSecondIn: Math.round((s1 - s0) / secs),
      serverCpuPercentOfOneCore: Math.round(((c1 - c0) / secs) * 1000) / 10,
      cpuMicrosecondsPerRelayedPacket: Math.round(((c1 - c0) * 1e6) / (s1 - s0)),
      lossPercent: Math.round((1 - (r1 - r0) / (s1 - s0)) * 10000) / 100,
    }),
  );
  child.kill('SIGTERM');
  client.close();
  pairs.flat().forEach((p) => p.close());
  process.exit(0);
}

async function micro(): Promise<void> {
  const { runMicro } = await import('./media/relay-micro');
  const iterations = Number(flag('--iterations') ?? 2_000_000);
  const beforeSrc = flag('--before-src');
  const table = await runMicro({
    iterations,
    sendBatches: Math.max(10, Math.round(iterations / 4000)),
    legPackets: Math.max(5000, Math.round(iterations / 20)),
    ...(beforeSrc ? { beforeSrc } : {}),
  });
  process.stdout.write(`${table}\n`);
  process.exit(0);
}

if (argv.includes('--micro')) void micro();
else void main();
