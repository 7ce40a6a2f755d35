import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { ferryMediaReadyPort } from '../helpers/ferry-media-ready';
import { pollUntil } from '../helpers/wait-for';
import { ferryPartSpec } from '../../src/cli/supervisor/child-process-supervisor';

/**
 * ferry media's memory settings (docs/media-server.md, "Memory settings"): a 2 MiB V8 semi-space and
 * glibc.malloc.arena_max, which must be in place when the process starts. `bin/ferry media` relaunches
 * itself once with them (a child that serves; the parent passes signals on and exits as it does);
 * FERRY_MEDIA_MEMORY_SETTINGS=0 runs it in one process as before; `ferry start` gives them to its media
 * child directly. Real `ferry media` processes, read through /proc.
 */

const ROOT = path.join(__dirname, '..', '..');
const FERRY = path.join(ROOT, 'bin', 'ferry');
const memory = require(path.join(ROOT, 'bin', 'ferry-media-memory.js')) as {
  mediaStartSettings(env: NodeJS.ProcessEnv, execArgv: string[]): { nodeOptions: string[]; env: Record<string, string> };
  workerYoungGenerationMb(env: NodeJS.ProcessEnv): number | undefined;
};
const children = new Set<ChildProcess>();

/** The test's environment without anything that would already give the settings. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['GLIBC_TUNABLES', 'MALLOC_ARENA_MAX', 'NODE_OPTIONS', 'FERRY_MEDIA_MEMORY_APPLIED', 'FERRY_MEDIA_MEMORY_SETTINGS', 'FERRY_MEDIA_SEMI_SPACE_MB', 'FERRY_MEDIA_GLIBC_TUNABLES']) {
    delete env[k];
  }
  return env;
}

interface Media {
  child: ChildProcess;
  port: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startMedia(env: Record<string, string>): Promise<Media> {
  const child = spawn(process.execPath, [FERRY, 'media'], {
    cwd: ROOT,
    env: { ...cleanEnv(), FERRY_MEDIA_HOST: '127.0.0.1', FERRY_MEDIA_PORT: '0', FERRY_MEDIA_WORKERS: '1', FERRY_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  const stderr: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const port = await ferryMediaReadyPort(child, { timeoutMs: 60_000, log: () => stderr.join('\n') });
  return { child, port, exited };
}

function childPids(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    // a zombie has no command line left
    return fs.readFileSync(`/proc/${pid}/cmdline`).length > 0;
  } catch {
    return false;
  }
}

function commandLine(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

function environ(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const kv of fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const eq = kv.indexOf('=');
    if (eq > 0) out.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  return out;
}

describe('ferry media memory settings', { timeout: 180_000 }, () => {
  after(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  test('bin/ferry media serves from a child started with --max-semi-space-size=2 and glibc.malloc.arena_max; SIGTERM passes through', { timeout: 60_000 }, async () => {
    const media = await startMedia({});
    const parent = media.child.pid!;
    const [server, ...more] = childPids(parent);
    assert.ok(server, 'the started process has a child');
    assert.deepEqual(more, []);
    assert.ok(commandLine(server).includes('--max-semi-space-size=2'), commandLine(server).join(' '));
    assert.equal(environ(server).get('GLIBC_TUNABLES'), 'glibc.malloc.arena_max=2', 'one relay thread (FERRY_MEDIA_WORKERS=1) + 1');
    assert.equal(environ(parent).get('GLIBC_TUNABLES'), undefined, 'the parent runs without');
    assert.deepEqual(commandLine(server).slice(-2), [FERRY, 'media'], 'the child runs ferry media');
    media.child.kill('SIGTERM');
    assert.deepEqual(await media.exited, { code: 0, signal: null }, 'the parent exits as the child does (a clean stop)');
    await pollUntil(() => !alive(server), { timeoutMs: 10_000, what: 'the child stopped' });
  });

  test('a malformed memory setting is refused in one line, no stack trace (FERRY_MEDIA_WORKERS, FERRY_MEDIA_HEAP_GROWING_PERCENT)', { timeout: 60_000 }, () => {
    for (const [name, value] of [
      ['FERRY_MEDIA_WORKERS', 'abc'],
      ['FERRY_MEDIA_HEAP_GROWING_PERCENT', 'abc'],
      ['FERRY_MEDIA_HEAP_GROWING_PERCENT', '500'],
    ] as const) {
      const r = spawnSync(process.execPath, [FERRY, 'media'], {
        cwd: ROOT,
        env: { ...cleanEnv(), FERRY_MEDIA_HOST: '127.0.0.1', FERRY_MEDIA_PORT: '0', FERRY_LOG_LEVEL: 'warn', [name]: value },
        encoding: 'utf8',
        timeout: 50_000,
      });
      assert.equal(r.status, 1, `${name}=${value}: exit code 1 (stderr: ${r.stderr})`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${name}=${value}: one line: ${r.stderr}`);
      assert.match(lines[0]!, new RegExp(`^ferry media: .*${name}`));
      assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
    }
  });

  test('a SIGKILL of the parent takes the child down', { timeout: 60_000 }, async () => {
    const media = await startMedia({});
    const [server] = childPids(media.child.pid!);
    assert.ok(server && alive(server), 'positive control: the child runs');
    media.child.kill('SIGKILL');
    await media.exited;
    await pollUntil(() => !alive(server), { timeoutMs: 10_000, what: 'the child killed with its parent' });
  });

  test('FERRY_MEDIA_MEMORY_SETTINGS=0: one process, no settings', { timeout: 60_000 }, async () => {
    const media = await startMedia({ FERRY_MEDIA_MEMORY_SETTINGS: '0' });
    const pid = media.child.pid!;
    assert.deepEqual(childPids(pid), []);
    assert.ok(!commandLine(pid).some((a) => a.startsWith('--max-semi-space-size')), commandLine(pid).join(' '));
    assert.equal(environ(pid).get('GLIBC_TUNABLES'), undefined);
    media.child.kill('SIGTERM');
    assert.deepEqual(await media.exited, { code: 0, signal: null });
  });

  test('settings already given (NODE_OPTIONS, GLIBC_TUNABLES): no relaunch, theirs are kept', { timeout: 60_000 }, async () => {
    const media = await startMedia({ NODE_OPTIONS: '--max-semi-space-size=1', GLIBC_TUNABLES: 'glibc.malloc.arena_max=1' });
    const pid = media.child.pid!;
    assert.deepEqual(childPids(pid), []);
    media.child.kill('SIGTERM');
    assert.deepEqual(await media.exited, { code: 0, signal: null });
  });

  test('the settings as computed: semi-space and arenas follow the variables; relay workers get 3 semi-spaces of young generation', () => {
    assert.deepEqual(memory.mediaStartSettings({ FERRY_MEDIA_WORKERS: '4' }, []), {
      nodeOptions: ['--max-semi-space-size=2'],
      env: { GLIBC_TUNABLES: 'glibc.malloc.arena_max=5', FERRY_MEDIA_MEMORY_APPLIED: '1' },
    });
    assert.deepEqual(memory.mediaStartSettings({ FERRY_MEDIA_SEMI_SPACE_MB: '0', FERRY_MEDIA_GLIBC_TUNABLES: '' }, []), { nodeOptions: [], env: {} });
    assert.deepEqual(memory.mediaStartSettings({ FERRY_MEDIA_SEMI_SPACE_MB: '8', FERRY_MEDIA_GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=65536' }, []), {
      nodeOptions: ['--max-semi-space-size=8'],
      env: { GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=65536', FERRY_MEDIA_MEMORY_APPLIED: '1' },
    });
    assert.deepEqual(memory.mediaStartSettings({ FERRY_MEDIA_MEMORY_APPLIED: '1' }, []), { nodeOptions: [], env: {} });
    assert.deepEqual(memory.mediaStartSettings({}, ['--max_semi_space_size=4']).nodeOptions, []);
    assert.throws(() => memory.mediaStartSettings({ FERRY_MEDIA_SEMI_SPACE_MB: 'big' }, []), /FERRY_MEDIA_SEMI_SPACE_MB=big/);
    assert.equal(memory.workerYoungGenerationMb({}), 6);
    assert.equal(memory.workerYoungGenerationMb({ FERRY_MEDIA_SEMI_SPACE_MB: '0' }), undefined);
    assert.equal(memory.workerYoungGenerationMb({ FERRY_MEDIA_MEMORY_SETTINGS: '0' }), undefined);
  });

  test('ferry start gives its media child the settings on its command line (no relaunch); the other parts get none', () => {
    const saved = { ...process.env };
    try {
      for (const k of Object.keys(process.env)) if (!(k in cleanEnv())) delete process.env[k];
      const media = ferryPartSpec({ name: 'media', env: { FERRY_MEDIA_WORKERS: '2' } });
      assert.equal(media.args[0], '--max-semi-space-size=2');
      assert.equal(media.args[media.args.length - 1], 'media');
      assert.equal(media.env?.GLIBC_TUNABLES, 'glibc.malloc.arena_max=3');
      assert.equal(media.env?.FERRY_MEDIA_MEMORY_APPLIED, '1');
      const sip = ferryPartSpec({ name: 'sip', env: {} });
      assert.equal(sip.args.length, 2);
      assert.equal(sip.env?.GLIBC_TUNABLES, undefined);
    } finally {
      for (const k of Object.keys(process.env)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });
});
