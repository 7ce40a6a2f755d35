import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { FerryStartProcess, type FerryReady } from '../helpers/ferry-start-process';
import { waitFor } from '../helpers/stack';

/**
 * docs/lifecycle.md F1, the store side: the private redis-server `ferry start` runs by default.
 * Real `ferry start` processes, real redis-server children, each test on its own data directory.
 */
/** a running process (a zombie waiting for this machine's init to reap it counts as gone) */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

async function ping(port: number): Promise<string> {
  const r = new Redis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
  r.on('error', () => undefined); // a refused connection is the answer here
  try {
    await r.connect();
    return await r.ping();
  } finally {
    r.disconnect();
  }
}

/** the redis-server child of `ppid` running now (found in /proc: a restarted one has a new pid) */
function runningRedisServer(ppid: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== ppid || fields[0] === 'Z') continue;
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'redis-server') return Number(entry);
    } catch {
      /* gone meanwhile */
    }
  }
  return undefined;
}

async function started(dataDir: string): Promise<{ fs: FerryStartProcess; ready: FerryReady }> {
  const fs = FerryStartProcess.spawn({ FERRY_DATA_DIR: dataDir, REDIS_URL: '' });
  try {
    return { fs, ready: await fs.ready() };
  } catch (err) {
    await fs.stop();
    throw err;
  }
}

/**
 * One data directory and one running ferry start for the whole file (fewer ferry starts, each takes
 * seconds): the first scenario stops it and starts the next on the same directory, which the others
 * use; F6 SIGKILLs it last.
 */
describe('F1: ferry start\'s private Redis', { timeout: 180_000 }, () => {
  let dir: string;
  let current: { fs: FerryStartProcess; ready: FerryReady };
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-f1-redis-'));
    current = await started(dir);
  });
  after(async () => {
    await current?.fs.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('F1: the gateway id and what the gateway wrote survive a restart of ferry start on the same data directory', async () => {
    const first = current;
    assert.equal(first.ready.store, 'private-redis');
    assert.equal(first.ready.dataDir, dir);
    const id = first.ready.gatewayId;
    assert.equal(readFileSync(path.join(dir, 'gateway-id'), 'utf8').trim(), id);
    const r = new Redis(`redis://127.0.0.1:${first.ready.redis}`);
    try {
      await r.set('ferry-f1-probe', 'kept');
      // the gateway itself wrote its lease there
      assert.ok((await r.keys('ferry:lease:*')).includes(`ferry:lease:${id}`), 'the gateway uses the private Redis');
    } finally {
      r.disconnect();
    }
    await first.fs.stop();
    assert.equal(await first.fs.exited, 0);
    assert.ok(!alive(first.ready.pids.redis!), 'the private redis-server stopped with ferry start');
    current = await started(dir);
    const second = current;
    assert.equal(second.ready.gatewayId, id, 'the same gateway id on the same data directory');
    const r2 = new Redis(`redis://127.0.0.1:${second.ready.redis}`);
    try {
      assert.equal(await r2.get('ferry-f1-probe'), 'kept', 'the append-only file kept the data');
    } finally {
      r2.disconnect();
    }
  });

  test('F1: a second ferry start on the same data directory is refused while the first runs', async () => {
    const first = current;
    assert.equal(first.fs.child.exitCode, null, 'the first ferry start runs');
    const second = FerryStartProcess.spawn({ FERRY_DATA_DIR: dir, REDIS_URL: '' });
    assert.equal(await second.exited, 1);
    const line = await second.waitLine((l) => l.includes('is in use by another ferry start'), 0, 1000, 'the refusal');
    assert.ok(line.line.includes(dir) && line.line.includes(`pid ${first.fs.child.pid}`), line.line);
    assert.equal(await ping(first.ready.redis!), 'PONG', "the first one's Redis is untouched");
  });

  test('F1: the private redis-server SIGKILLed is restarted on the same port with its data', async () => {
    const { fs, ready } = current;
    const port = ready.redis!;
    const r = new Redis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: 1 });
    await r.set('ferry-f1-killed-probe', 'kept');
    // appendfsync everysec: wait until the write is in the append-only file before the kill
    await r.call('BGREWRITEAOF').catch(() => undefined);
    await waitFor(async () => (await r.info('persistence')).includes('aof_rewrite_in_progress:0'), 5000, 50, 'AOF rewritten');
    r.disconnect();
    const killedAt = Date.now();
    process.kill(ready.pids.redis!, 'SIGKILL');
    await fs.waitLine((l) => l.startsWith('[redis] exited unexpectedly'), killedAt, 5000, 'the supervisor restarting redis');
    await waitFor(async () => (await ping(port).catch(() => '')) === 'PONG', 10_000, 50, 'redis back on the same port');
    const back = Date.now() - killedAt;
    const r2 = new Redis(`redis://127.0.0.1:${port}`);
    try {
      assert.equal(await r2.get('ferry-f1-killed-probe'), 'kept');
    } finally {
      r2.disconnect();
    }
    console.log(`[measure] F1 private redis-server back on port ${port} ${back} ms after its SIGKILL`);
  });

  test('F6: SIGKILL of ferry start takes its private redis-server with it within 2 s', async () => {
    const { fs } = current;
    // the redis-server running now (the scenario before restarted it: a new pid)
    const redisPid = runningRedisServer(fs.child.pid!);
    assert.ok(redisPid !== undefined && alive(redisPid), 'positive control: the private redis-server runs');
    const ready = current.ready;
    fs.child.kill('SIGKILL');
    await fs.exited;
    const killedAt = Date.now();
    await waitFor(() => !alive(redisPid), 2000, 20, `redis-server ${redisPid} gone`);
    console.log(`[measure] F6 private redis-server gone ${Date.now() - killedAt} ms after ferry start was SIGKILLed`);
    for (const pid of [ready.pids.sip, ready.pids.media, ready.pids.gateway]) await waitFor(() => !alive(pid), 3000, 20, `child ${pid} gone`);
  });
});
