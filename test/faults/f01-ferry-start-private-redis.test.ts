import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

async function withDataDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-f1-redis-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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

describe('F1: ferry start\'s private Redis', { timeout: 180_000 }, () => {
  test('F1: the gateway id and what the gateway wrote survive a restart of ferry start on the same data directory', async () => {
    await withDataDir(async (dir) => {
      const first = await started(dir);
      let id: string;
      try {
        assert.equal(first.ready.store, 'private-redis');
        assert.equal(first.ready.dataDir, dir);
        id = first.ready.gatewayId;
        assert.equal(readFileSync(path.join(dir, 'gateway-id'), 'utf8').trim(), id);
        const r = new Redis(`redis://127.0.0.1:${first.ready.redis}`);
        await r.set('ferry-f1-probe', 'kept');
        // the gateway itself wrote its lease there
        assert.ok((await r.keys('ferry:lease:*')).includes(`ferry:lease:${id}`), 'the gateway uses the private Redis');
        r.disconnect();
      } finally {
        await first.fs.stop();
      }
      assert.equal(await first.fs.exited, 0);
      assert.ok(!alive(first.ready.pids.redis!), 'the private redis-server stopped with ferry start');
      const second = await started(dir);
      try {
        assert.equal(second.ready.gatewayId, id, 'the same gateway id on the same data directory');
        const r = new Redis(`redis://127.0.0.1:${second.ready.redis}`);
        assert.equal(await r.get('ferry-f1-probe'), 'kept', 'the append-only file kept the data');
        r.disconnect();
      } finally {
        await second.fs.stop();
      }
    });
  });

  test('F1: a second ferry start on the same data directory is refused while the first runs', async () => {
    await withDataDir(async (dir) => {
      const first = await started(dir);
      try {
        const second = FerryStartProcess.spawn({ FERRY_DATA_DIR: dir, REDIS_URL: '' });
        assert.equal(await second.exited, 1);
        const line = await second.waitLine((l) => l.includes('is in use by another ferry start'), 0, 1000, 'the refusal');
        assert.ok(line.line.includes(dir) && line.line.includes(`pid ${first.fs.child.pid}`), line.line);
        assert.equal(await ping(first.ready.redis!), 'PONG', "the first one's Redis is untouched");
      } finally {
        await first.fs.stop();
      }
    });
  });

  test('F1: the private redis-server SIGKILLed is restarted on the same port with its data', async () => {
    await withDataDir(async (dir) => {
      const { fs, ready } = await started(dir);
      try {
        const port = ready.redis!;
        const r = new Redis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: 1 });
        await r.set('ferry-f1-probe', 'kept');
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
        assert.equal(await r2.get('ferry-f1-probe'), 'kept');
        r2.disconnect();
        console.log(`[measure] F1 private redis-server back on port ${port} ${back} ms after its SIGKILL`);
      } finally {
        await fs.stop();
      }
    });
  });

  test('F6: SIGKILL of ferry start takes its private redis-server with it within 2 s', async () => {
    await withDataDir(async (dir) => {
      const { fs, ready } = await started(dir);
      const redisPid = ready.pids.redis!;
      assert.ok(alive(redisPid), 'positive control: the private redis-server runs');
      fs.child.kill('SIGKILL');
      await fs.exited;
      const killedAt = Date.now();
      await waitFor(() => !alive(redisPid), 2000, 20, `redis-server ${redisPid} gone`);
      console.log(`[measure] F6 private redis-server gone ${Date.now() - killedAt} ms after ferry start was SIGKILLed`);
      for (const pid of [ready.pids.sip, ready.pids.media, ready.pids.gateway]) await waitFor(() => !alive(pid), 3000, 20, `child ${pid} gone`);
    });
  });
});
