/**
 * Ready-line time of each ferry part, from its sources through tsx (FERRY_BUNDLE=0) against the cached
 * start-up bundle (docs/architecture.md, "Process start-up"), alternating runs, medians
 * (docs/benchmarks.md, "Process start-up").
 *
 *   node --import tsx bench/process-startup.ts [runs per mode, default 5]
 *
 * `ferry sip`: until "ferry sip ready"; `ferry media` (FERRY_MEDIA_WORKERS=2): until its
 * "relay workers running" log line; `ferry gateway` (memory store, against a sip and a media started
 * once for it): until "ferry gateway ready"; `ferry start` (memory store): until "ferry ready".
 * All ports are free ones. The bundle is built before the first timed run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const ROOT = path.join(__dirname, '..');
const FERRY = path.join(ROOT, 'bin', 'ferry');
const RUNS = Number(process.argv[2] ?? 5);

interface Started {
  child: ChildProcess;
  ms: number;
  match: RegExpExecArray;
}

function start(part: string, env: Record<string, string>, ready: RegExp): Promise<Started> {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [FERRY, part], {
    cwd: ROOT,
    env: { ...process.env, FERRY_LOG_LEVEL: 'info', FERRY_LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${part} not ready within 60 s`)), 60_000);
    child.once('exit', (code) => reject(new Error(`${part} exited (${code}) before ready`)));
    const look = (line: string): void => {
      const m = ready.exec(line);
      if (!m) return;
      clearTimeout(timer);
      resolve({ child, ms: Number(process.hrtime.bigint() - t0) / 1e6, match: m });
    };
    readline.createInterface({ input: child.stdout! }).on('line', look);
    readline.createInterface({ input: child.stderr! }).on('line', look);
  });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  // build (or find) the bundle first: a build is not a start-up
  spawnSync(process.execPath, [FERRY, '--help'], { stdio: 'ignore' });
  const sip = await start('sip', { FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0' }, /^ferry sip ready (\{.*\})/);
  const media = await start('media', { FERRY_MEDIA_PORT: '0', FERRY_MEDIA_WORKERS: '1' }, /^ferry media ready (\{.*\})/);
  const control = (JSON.parse(sip.match[1]!) as { control: number }).control;
  const mediaPort = (JSON.parse(media.match[1]!) as { port: number }).port;
  const parts: { name: string; part: string; env: () => Record<string, string>; ready: RegExp }[] = [
    { name: 'ferry sip', part: 'sip', env: () => ({ FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0' }), ready: /^ferry sip ready/ },
    { name: 'ferry media (2 workers)', part: 'media', env: () => ({ FERRY_MEDIA_PORT: '0', FERRY_MEDIA_WORKERS: '2' }), ready: /"message":"relay workers running"/ },
    {
      name: 'ferry gateway',
      part: 'gateway',
      env: () => ({ FERRY_STORE: 'memory', FERRY_HTTP_PORT: '0', FERRY_TLS: '0', FERRY_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-')), FERRY_SIP_CONTROL_URL: `127.0.0.1:${control}`, FERRY_MEDIA_URL: `ws://127.0.0.1:${mediaPort}/kurento` }),
      ready: /^ferry gateway ready/,
    },
    {
      name: 'ferry start',
      part: 'start',
      env: () => ({ FERRY_STORE: 'memory', FERRY_TLS: '0', FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', FERRY_MEDIA_PORT: '0', FERRY_HTTP_PORT: '0', FERRY_API_TOKEN: 'bench-token-0123456789abcdef', FERRY_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-')) }),
      ready: /^ferry ready /,
    },
  ];
  const only = process.env.BENCH_PARTS?.split(',');
  try {
    for (const p of parts) {
      if (only && !only.includes(p.part)) continue;
      const times: Record<'tsx' | 'bundle', number[]> = { tsx: [], bundle: [] };
      for (let i = 0; i < RUNS; i++) {
        const order: ('tsx' | 'bundle')[] = i % 2 ? ['bundle', 'tsx'] : ['tsx', 'bundle'];
        for (const mode of order) {
          const s = await start(p.part, { ...p.env(), FERRY_BUNDLE: mode === 'tsx' ? '0' : '1' }, p.ready);
          times[mode].push(s.ms);
          await stop(s.child);
        }
      }
      const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(' ');
      console.log(`${p.name}: tsx median ${median(times.tsx).toFixed(0)} ms [${fmt(times.tsx)}]; bundle median ${median(times.bundle).toFixed(0)} ms [${fmt(times.bundle)}]`);
    }
  } finally {
    await stop(sip.child);
    await stop(media.child);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
