import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { WorkerStatsEntry } from '../../src/media/server/media-stats';
import { ferryMediaReadyPort } from '../helpers/ferry-media-ready';
import { pollUntil } from '../helpers/wait-for';

/**
 * The start-up bundle cache of bin/ferry (docs/architecture.md, "Process start-up"), with real `ferry media`
 * processes, each test on its own cache directory (FERRY_BUNDLE_CACHE_DIR) so nothing here fights over
 * node_modules/.cache. FERRY_BUNDLE_VERBOSE=1 makes bin/ferry say on stderr which way it runs.
 */

const ROOT = path.join(__dirname, '..', '..');
const FERRY = path.join(ROOT, 'bin', 'ferry');
const tmpDirs: string[] = [];
const children = new Set<ChildProcess>();

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-bundle-cache-'));
  tmpDirs.push(d);
  return d;
}

interface Run {
  child: ChildProcess;
  port: number;
  stderr: string[];
  /** the bin/ferry line saying how it runs (bundle cached / built / raced, or tsx) */
  how: string;
}

/**
 * `ferry media` on a free port with these variables; resolves at its ready line. In one process
 * (FERRY_MEDIA_MEMORY_SETTINGS=0, no relaunch: test/integration/ferry-media-memory-settings.test.ts), so the
 * spawned pid is the one that runs the bundle.
 */
async function startMedia(env: Record<string, string>): Promise<Run> {
  const child = spawn(process.execPath, [FERRY, 'media'], {
    cwd: ROOT,
    env: { ...process.env, FERRY_MEDIA_HOST: '127.0.0.1', FERRY_MEDIA_PORT: '0', FERRY_MEDIA_WORKERS: '1', FERRY_BUNDLE_VERBOSE: '1', FERRY_LOG_LEVEL: 'warn', FERRY_MEDIA_MEMORY_SETTINGS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const stderr: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const port = await ferryMediaReadyPort(child, { timeoutMs: 60_000, log: () => stderr.join('\n') });
  const how = stderr.find((l) => l.startsWith('ferry: ')) ?? '';
  return { child, port, stderr, how };
}

async function stop(run: Run): Promise<void> {
  const { child } = run;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

/** Key directories in a cache directory (temporary build directories start with a dot). */
function keys(cacheDir: string): string[] {
  return fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir).filter((n) => !n.startsWith('.')) : [];
}

function bundleOf(cacheDir: string, key: string): string {
  return path.join(cacheDir, key, 'main.js');
}

describe('ferry start-up bundle cache', { timeout: 300_000 }, () => {
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const d of tmpDirs) {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });

  const cacheDir = path.join(tempDir(), 'cache');

  test('a first start builds the bundle and runs from it; its source maps name the .ts files', { timeout: 90_000 }, async () => {
    assert.deepEqual(keys(cacheDir), []);
    const run = await startMedia({ FERRY_BUNDLE_CACHE_DIR: cacheDir });
    await stop(run);
    assert.match(run.how, /^ferry: running start-up bundle .*main\.js \(built in \d+ ms\)$/, run.stderr.join('\n'));
    const [key, ...more] = keys(cacheDir);
    assert.ok(key, 'one key directory');
    assert.deepEqual(more, []);
    assert.ok(run.how.includes(bundleOf(cacheDir, key)), run.how);
    for (const f of ['main.js', 'main.js.map', 'relay-worker.js', 'relay-worker.js.map']) assert.ok(fs.existsSync(path.join(cacheDir, key, f)), f);
    // the sources are ES modules, strict mode: the bundles must be too (the directive has to come first)
    for (const f of ['main.js', 'relay-worker.js']) assert.match(fs.readFileSync(path.join(cacheDir, key, f), 'utf8'), /^'use strict';\n/, f);
    const map = JSON.parse(fs.readFileSync(path.join(cacheDir, key, 'main.js.map'), 'utf8')) as { sources: string[] };
    const cliMain = map.sources.map((s) => path.resolve(cacheDir, key, s)).find((s) => s === path.join(ROOT, 'src', 'cli', 'main.ts'));
    assert.ok(cliMain, 'the source map names src/cli/main.ts');
  });

  test('a second start reuses the bundle: no rebuild', { timeout: 60_000 }, async () => {
    const [key] = keys(cacheDir);
    assert.ok(key);
    const before = fs.statSync(bundleOf(cacheDir, key));
    const run = await startMedia({ FERRY_BUNDLE_CACHE_DIR: cacheDir });
    await stop(run);
    assert.equal(run.how, `ferry: running start-up bundle ${bundleOf(cacheDir, key)} (cached)`);
    const afterRun = fs.statSync(bundleOf(cacheDir, key));
    assert.equal(afterRun.mtimeMs, before.mtimeMs);
    assert.equal(afterRun.ino, before.ino);
    assert.deepEqual(keys(cacheDir), [key]);
  });

  test('a touched source file gives a new key and a rebuild', { timeout: 90_000 }, async () => {
    const [oldKey] = keys(cacheDir);
    assert.ok(oldKey);
    // a file this test's subject owns; its mtime is put back afterwards
    const touched = path.join(ROOT, 'src', 'common', 'package-root.ts');
    const st = fs.statSync(touched);
    fs.utimesSync(touched, st.atime, new Date(st.mtimeMs + 1000));
    let run: Run;
    try {
      run = await startMedia({ FERRY_BUNDLE_CACHE_DIR: cacheDir });
    } finally {
      fs.utimesSync(touched, st.atime, st.mtime);
    }
    await stop(run);
    assert.match(run.how, /\(built in \d+ ms\)$/, run.how);
    const newKey = /\/([0-9a-f]{24})\/main\.js /.exec(run.how)?.[1];
    assert.ok(newKey && newKey !== oldKey, run.how);
    assert.ok(fs.existsSync(bundleOf(cacheDir, newKey)));
    assert.ok(fs.existsSync(bundleOf(cacheDir, oldKey)), 'the old key is kept (the newest few are)');
  });

  test('two processes started at once on an empty cache both run and leave one complete bundle', { timeout: 120_000 }, async () => {
    const dir = path.join(tempDir(), 'cache');
    const runs = await Promise.all([startMedia({ FERRY_BUNDLE_CACHE_DIR: dir }), startMedia({ FERRY_BUNDLE_CACHE_DIR: dir })]);
    await Promise.all(runs.map(stop));
    const [key, ...more] = keys(dir);
    assert.ok(key);
    assert.deepEqual(more, [], 'one key directory');
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('.tmp-')), [], 'no temporary build left');
    for (const r of runs) assert.match(r.how, new RegExp(`^ferry: running start-up bundle ${bundleOf(dir, key).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\((built in \\d+ ms|raced in \\d+ ms|cached)\\)$`), r.how);
    assert.ok(runs.filter((r) => r.how.includes('(built')).length <= 1, 'at most one build was renamed into place');
    const main = fs.readFileSync(bundleOf(dir, key), 'utf8');
    assert.match(main, /\/\/# sourceMappingURL=main\.js\.map\s*$/, 'main.js is complete');
  });

  test('FERRY_BUNDLE=0 runs the sources through tsx and builds nothing', { timeout: 60_000 }, async () => {
    const dir = path.join(tempDir(), 'cache');
    const run = await startMedia({ FERRY_BUNDLE_CACHE_DIR: dir, FERRY_BUNDLE: '0' });
    await stop(run);
    assert.equal(run.how, 'ferry: FERRY_BUNDLE=0: running the TypeScript sources through tsx');
    assert.equal(fs.existsSync(dir), false);
  });

  test('a cache directory that cannot be written falls back to tsx with one line on stderr', { timeout: 60_000 }, async () => {
    // a path below a regular file: mkdir fails whoever runs this (root ignores a read-only mode)
    const file = path.join(tempDir(), 'not-a-directory');
    fs.writeFileSync(file, '');
    const run = await startMedia({ FERRY_BUNDLE_CACHE_DIR: path.join(file, 'cache'), FERRY_BUNDLE_VERBOSE: '0' });
    await stop(run);
    const lines = run.stderr.filter((l) => l.startsWith('ferry: '));
    assert.equal(lines.length, 1, run.stderr.join('\n'));
    assert.match(lines[0]!, /^ferry: start-up bundle not used \(.*ENOTDIR.*\); running the TypeScript sources through tsx$/);
  });

  test('pruning spares a bundle a running process marks (its relay workers restart from it) and drops markers of dead processes', { timeout: 90_000 }, async () => {
    const dir = path.join(tempDir(), 'cache');
    const run = await startMedia({ FERRY_BUNDLE_CACHE_DIR: dir });
    try {
      const [running] = keys(dir);
      assert.ok(running);
      assert.deepEqual(fs.readdirSync(path.join(dir, running, 'in-use')), [String(run.child.pid)]);
      // a pid that is surely gone: a child that has exited
      const gone = spawn(process.execPath, ['-e', '']);
      const gonePid = gone.pid!;
      await new Promise<void>((resolve) => gone.once('exit', () => resolve()));
      const fake = (i: number, ageS: number, pid?: number): string => {
        const name = i.toString(16).padStart(24, '0');
        fs.mkdirSync(path.join(dir, name, 'in-use'), { recursive: true });
        fs.writeFileSync(path.join(dir, name, 'main.js'), '');
        if (pid !== undefined) fs.writeFileSync(path.join(dir, name, 'in-use', String(pid)), '');
        const t = new Date(Date.now() - ageS * 1000);
        fs.utimesSync(path.join(dir, name), t, t);
        return name;
      };
      const newer = [1, 2, 3, 4, 5].map((i) => fake(i, i)); // 1 s .. 5 s old: newer than the running key
      const dead = fake(6, 3600, gonePid); // old and marked by a process that is gone
      const old = new Date(Date.now() - 7200 * 1000);
      fs.utimesSync(path.join(dir, running), old, old); // the running key is the oldest of all
      const { prune } = require(path.join(ROOT, 'bin', 'ferry-bundle.js')) as { prune(cacheDir: string, keep: string): void };
      prune(dir, 'f'.repeat(24));
      const left = keys(dir).sort();
      assert.deepEqual(left, [...newer.slice(0, 4), running].sort(), 'the 4 newest, and the running process\'s bundle');
      assert.ok(!left.includes(dead) && !left.includes(newer[4]!));
      assert.ok(fs.existsSync(path.join(dir, running, 'relay-worker.js')));
    } finally {
      await stop(run);
    }
    const [running] = keys(dir).filter((k) => fs.existsSync(path.join(dir, k, 'relay-worker.js')));
    assert.deepEqual(fs.readdirSync(path.join(dir, running!, 'in-use')), [], 'the marker goes when the process exits');
  });

  test('ferry media run from the sources in another process (an embedding app, a test) starts its relay workers from the bundle; FERRY_BUNDLE=0 from relay-worker.ts through tsx', { timeout: 90_000 }, async () => {
    const dir = path.join(tempDir(), 'cache');
    const entry = async (env: Record<string, string>): Promise<{ module: string; tsxApi?: string }> => {
      const script = "process.stdout.write(JSON.stringify(require('./src/media/workers/worker-pool').relayWorkerEntry()))";
      const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, env: { ...process.env, FERRY_BUNDLE_CACHE_DIR: dir, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(child);
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      children.delete(child);
      assert.equal(code, 0, err);
      return JSON.parse(out) as { module: string; tsxApi?: string };
    };
    const bundled = await entry({});
    const [key] = keys(dir);
    assert.ok(key, 'the worker bundle was built in the cache');
    assert.deepEqual(bundled, { module: path.join(dir, key, 'relay-worker.js') });
    const sources = await entry({ FERRY_BUNDLE: '0' });
    assert.equal(sources.module, path.join(ROOT, 'src', 'media', 'workers', 'relay-worker.ts'));
    assert.ok(sources.tsxApi, 'tsx registered in the worker');
  });

  test('bundled ferry media with FERRY_MEDIA_WORKERS=2 has both relay workers running', { timeout: 90_000 }, async () => {
    const run = await startMedia({ FERRY_BUNDLE_CACHE_DIR: cacheDir, FERRY_MEDIA_WORKERS: '2' });
    try {
      assert.match(run.how, /^ferry: running start-up bundle .*main\.js \((cached|built in \d+ ms)\)$/, run.how);
      let workers: WorkerStatsEntry[] = [];
      await pollUntil(async () => {
        const res = await fetch(`http://127.0.0.1:${run.port}/stats`);
        workers = ((await res.json()) as { workers: WorkerStatsEntry[] }).workers;
        return workers.length === 2 && workers.every((w) => w.running);
      }, { timeoutMs: 30_000, what: 'two relay workers running' });
      assert.deepEqual(workers.map((w) => w.id).sort(), [1, 2]);
      assert.ok(workers.every((w) => w.restarts === 0), JSON.stringify(workers));
    } finally {
      await stop(run);
    }
  });
});
