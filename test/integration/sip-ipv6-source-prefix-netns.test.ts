/**
 * IPv6 sources are counted by their /64 (src/common/source-key.ts, docs/security.md "Connections"): one
 * subscriber picks any address of the /64 it is handed, so `bin/ferry sip`'s per-source connection cap
 * must hold for the /64, not for each address. In a network namespace of its own (addresses of
 * 2001:db8:0:1::/64 and 2001:db8:0:2::/64 on its loopback, `nodad`), ferry sip listens on [::] and a child
 * process opens SIP TCP connections from chosen addresses: connections from different addresses of one
 * /64 share one cap (past it: refused, counted, logged with the address and the /64), while an address
 * of another /64 and an IPv4 client are still served (positive controls). A freed slot is taken again by
 * yet another address of the /64. With FERRY_SOURCE_IPV6_PREFIX=128 the same addresses are counted one
 * by one. Needs root (ip netns).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { pollUntil } from '../helpers/wait-for';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');
const NS = `fv6${process.pid}`;
const SERVER = '2001:db8:0:ff::1';
const A = ['2001:db8:0:1::a', '2001:db8:0:1::b', '2001:db8:0:1:ffff::c', '2001:db8:0:1::d', '2001:db8:0:1::e', '2001:db8:0:1::f'];
const OTHER = '2001:db8:0:2::a';

interface Engine {
  child: ChildProcess;
  port: number;
  output: () => string;
  stop: () => Promise<void>;
}

interface ConnectionStats {
  open: number;
  sources: number;
  refused: Record<string, number>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  try { execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' }); } catch { /* gone */ }
});

function track(child: ChildProcess): () => Promise<void> {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  };
}

/** `bin/ferry sip` inside the namespace on [::] (every port free), with `env` */
async function startEngine(env: Record<string, string>): Promise<Engine> {
  // `ip netns exec` execs the command: the child is ferry sip itself
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, path.join(ROOT, 'bin/ferry'), 'sip'], {
    cwd: ROOT,
    env: {
      ...process.env, FERRY_SIP_HOST: '::', FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0',
      FERRY_LOG_LEVEL: 'info', FERRY_LOG_FORMAT: 'json', FERRY_SIP_STATS_INTERVAL_MS: '100', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stop = track(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const ready = await pollUntil(() => /ferry sip ready (\{[^\n]*\})/.exec(out)?.[1] ?? (child.exitCode !== null ? 'exited' : undefined),
    { timeoutMs: 20_000, what: `ferry sip ready in the namespace (${out.slice(-500)})` });
  if (ready === 'exited') throw new Error(`ferry sip exited: ${out.slice(-2000)}`);
  return { child, port: (JSON.parse(ready) as { sip: number }).sip, output: () => out, stop };
}

/** the connection counts of the newest `ferry sip stats` line */
function stats(e: Engine): ConnectionStats | undefined {
  const lines = e.output().split('\n').filter((l) => l.startsWith('ferry sip stats '));
  const last = lines[lines.length - 1];
  return last ? (JSON.parse(last.slice('ferry sip stats '.length)) as { connections: ConnectionStats }).connections : undefined;
}

interface Probe {
  results: { local: string; result: string; line: string }[];
  /** closes the probe's connections */
  release: () => Promise<void>;
}

/** SIP TCP connections from `locals` in turn (test/helpers/sip-tcp-probe-child.ts), served ones kept open until `release` */
async function probe(port: number, server: string, locals: string[]): Promise<Probe> {
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, '--import', 'tsx', path.join(ROOT, 'test/helpers/sip-tcp-probe-child.ts'), String(port), server, ...locals],
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const kill = track(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  await pollUntil(() => out.includes('done\n') || (child.exitCode !== null ? true : undefined), { timeoutMs: 30_000, what: `the probe to finish (${out}${err})` });
  assert.ok(out.includes('done\n'), `probe failed: ${err}`);
  const results = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Probe['results'][number]);
  return {
    results,
    release: async () => {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin!.end();
      await Promise.race([exited, pollUntil(() => child.exitCode !== null || undefined, { timeoutMs: 5000, what: 'the probe to exit' })]).catch(() => kill());
    },
  };
}

describe('ferry sip: IPv6 sources share one per-source cap per /64 (network namespace)', { timeout: 120_000 }, () => {
  const engines: Engine[] = [];
  const probes: Probe[] = [];
  before(async () => {
    await run('ip', ['netns', 'add', NS]);
    await run('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    for (const a of [SERVER, ...A, OTHER]) await run('ip', ['-n', NS, 'addr', 'add', `${a}/64`, 'dev', 'lo', 'nodad']);
  });
  after(async () => {
    await Promise.all(probes.map((p) => p.release()));
    await Promise.all(engines.map((e) => e.stop()));
    await run('ip', ['netns', 'del', NS]).catch(() => undefined);
  });

  test('cap 3: three addresses of 2001:db8:0:1::/64 are served, the 4th and 5th refused (counted, logged with the /64); another /64 and IPv4 served; a freed slot goes to a 6th address', async () => {
    const e = await startEngine({ FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE: '3' });
    engines.push(e);
    const p = await probe(e.port, SERVER, [A[0]!, A[1]!, A[2]!, A[3]!, OTHER, A[4]!]);
    probes.push(p);
    assert.deepEqual(p.results.map((r) => `${r.local} ${r.result}`), [
      `${A[0]} served`, `${A[1]} served`, `${A[2]} served`, `${A[3]} refused`, `${OTHER} served`, `${A[4]} refused`,
    ]);
    assert.match(p.results[0]!.line, /^SIP\/2\.0 503 /, 'served: ferry sip answered (no app routes OPTIONS)');
    const v4 = await probe(e.port, '127.0.0.1', ['127.0.0.1']);
    probes.push(v4);
    assert.equal(v4.results[0]!.result, 'served', 'an IPv4 client of the dual-stack listener has its own count');
    const s = await pollUntil(() => { const c = stats(e); return c && c.open === 5 ? c : undefined; }, { timeoutMs: 5000, what: `5 open connections in the stats line (${JSON.stringify(stats(e))})` });
    assert.equal(s.sources, 3, 'three sources: the two /64s and 127.0.0.1');
    assert.equal(s.refused['per-source-cap'], 2);
    const refusal = e.output().split('\n').find((l) => l.includes('SIP connection refused from'));
    assert.ok(refusal, 'the refusal is logged');
    const line = JSON.parse(refusal) as Record<string, unknown>;
    assert.equal(line.message, `SIP connection refused from ${A[3]} (counted as 2001:db8:0:1::/64): per-source-cap`);
    assert.equal(line.source, A[3]);
    assert.equal(line.sourceKey, '2001:db8:0:1::/64');
    assert.equal(line.limit, 3);
    assert.equal(e.output().split('\n').filter((l) => l.includes('SIP connection refused from')).length, 1, 'the second refusal within 10 s is only counted');

    // the /64's connections close: its slots are free again, for any of its addresses
    await p.release();
    await pollUntil(() => stats(e)?.open === 1 || undefined, { timeoutMs: 5000, what: 'the probe\'s connections released' });
    const again = await probe(e.port, SERVER, [A[5]!, A[3]!]);
    probes.push(again);
    assert.deepEqual(again.results.map((r) => r.result), ['served', 'served']);
  });

  test('FERRY_SOURCE_IPV6_PREFIX=128: the same addresses are counted one by one (cap 1 each), a second connection from one address is refused', async () => {
    const e = await startEngine({ FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE: '1', FERRY_SOURCE_IPV6_PREFIX: '128' });
    engines.push(e);
    const p = await probe(e.port, SERVER, [A[0]!, A[1]!, A[2]!, A[3]!, A[0]!]);
    probes.push(p);
    assert.deepEqual(p.results.map((r) => r.result), ['served', 'served', 'served', 'served', 'refused']);
    // the stats line that counts the refusal too: one with the four open connections can come before it
    const s = await pollUntil(() => { const c = stats(e); return c && c.open === 4 && (c.refused['per-source-cap'] ?? 0) > 0 ? c : undefined; },
      { timeoutMs: 5000, what: `the stats line with 4 open and the refusal (${JSON.stringify(stats(e))})` });
    assert.equal(s.sources, 4);
    assert.equal(s.refused['per-source-cap'], 1);
  });

  test('FERRY_SOURCE_IPV6_PREFIX=32: ferry sip refuses to start, naming the variable', async () => {
    const child = spawn('ip', ['netns', 'exec', NS, process.execPath, path.join(ROOT, 'bin/ferry'), 'sip'], {
      cwd: ROOT, env: { ...process.env, FERRY_SIP_HOST: '::', FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', FERRY_SOURCE_IPV6_PREFIX: '32' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(child);
    let err = '';
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    assert.equal(code, 1);
    assert.match(err, /ferry sip: refusing to start: environment variable FERRY_SOURCE_IPV6_PREFIX="32" is not a prefix length: use 48\.\.128/);
  });
});
