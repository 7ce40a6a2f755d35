import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chooseGatewayStateStore, MEMORY_MODE_WARNING, StoreConfigError } from '../../src/cli/gateway-state-store';
import { DataDirInUse } from '../../src/cli/private-redis';
import { pollPause } from '../helpers/wait-for';

/**
 * How `ferry start` picks the gateway's state store and instance id (src/cli/gateway-state-store.ts),
 * without starting anything: FERRY_STORE, REDIS_URL, the private Redis's data directory, its lock
 * and the gateway id kept there.
 */
function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'ferry-store-choice-'));
}

async function choose(env: Record<string, string>): Promise<{ lines: string[]; result: Awaited<ReturnType<typeof chooseGatewayStateStore>> }> {
  const lines: string[] = [];
  const result = await chooseGatewayStateStore(env, (l) => lines.push(l));
  return { lines, result };
}

/** a live process whose command line names ferry, or not */
function liveProcess(name: string): { pid: number; kill(): void } {
  const child = spawn('bash', ['-c', `exec -a ${name} sleep 30`], { stdio: 'ignore' });
  return { pid: child.pid!, kill: () => child.kill('SIGKILL') };
}

async function waitForCmdline(pid: number, text: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text)) {
    if (Date.now() > deadline) throw new Error(`pid ${pid} never showed ${text}`);
    await pollPause(10);
  }
}

describe('ferry start: choosing the gateway state store', { timeout: 30_000 }, () => {
  test('FERRY_STORE=memory: the in-memory store, one warning line, no data directory touched', async () => {
    const dir = tempDir();
    try {
      const { lines, result } = await choose({ FERRY_STORE: 'memory', FERRY_DATA_DIR: path.join(dir, 'data'), REDIS_URL: 'redis://127.0.0.1:1' });
      assert.equal(result.mode, 'memory');
      assert.equal(result.gatewayEnv.REDIS_URL, '', 'the gateway gets no Redis even with REDIS_URL set');
      assert.match(result.gatewayEnv.FERRY_GATEWAY_ID!, /^gw-[0-9a-f]{8}$/);
      assert.equal(lines.length, 1);
      assert.ok(lines[0]!.startsWith(MEMORY_MODE_WARNING), lines[0]);
      assert.equal(existsSync(path.join(dir, 'data')), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('REDIS_URL: that Redis, no private one, silent; FERRY_GATEWAY_ID is kept when given', async () => {
    const { lines, result } = await choose({ REDIS_URL: 'redis://10.0.0.9:6379', FERRY_GATEWAY_ID: 'gw-fixed' });
    assert.equal(result.mode, 'redis');
    assert.equal(result.privateRedis, undefined);
    assert.deepEqual(result.gatewayEnv, { REDIS_URL: 'redis://10.0.0.9:6379', FERRY_GATEWAY_ID: 'gw-fixed' });
    assert.deepEqual(lines, []);
  });

  test('a bad FERRY_STORE is refused naming the variable', async () => {
    await assert.rejects(choose({ FERRY_STORE: 'etcd' }), (err: Error) => err instanceof StoreConfigError && /FERRY_STORE="etcd"/.test(err.message));
  });

  test('default: a private Redis on a loopback port in the data directory, and a gateway id kept there', async () => {
    const dir = tempDir();
    try {
      const first = await choose({ FERRY_DATA_DIR: dir });
      assert.equal(first.result.mode, 'private-redis');
      assert.deepEqual(first.lines, []);
      const pr = first.result.privateRedis!;
      assert.equal(first.result.gatewayEnv.REDIS_URL, `redis://127.0.0.1:${pr.port}`);
      assert.ok(pr.child.spec.args.includes(path.join(dir, 'redis')) && pr.child.spec.args.includes('--appendonly'), pr.child.spec.args.join(' '));
      const id = first.result.gatewayEnv.FERRY_GATEWAY_ID!;
      assert.equal(readFileSync(path.join(dir, 'gateway-id'), 'utf8').trim(), id);
      assert.equal(Number(readFileSync(path.join(dir, 'ferry-start.pid'), 'utf8')), process.pid);
      const again = await choose({ FERRY_DATA_DIR: dir });
      assert.equal(again.result.gatewayEnv.FERRY_GATEWAY_ID, id, 'the same id from the same data directory');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the data directory is refused while another live ferry process holds its lock (a recycled pid of another program does not count)', async () => {
    const dir = tempDir();
    const ferry = liveProcess('ferry-holder');
    const other = liveProcess('not-it');
    try {
      await waitForCmdline(ferry.pid, 'ferry-holder');
      await waitForCmdline(other.pid, 'not-it');
      writeFileSync(path.join(dir, 'ferry-start.pid'), `${ferry.pid}\n`);
      await assert.rejects(choose({ FERRY_DATA_DIR: dir }), (err: Error) => err instanceof DataDirInUse && err.message.includes(`pid ${ferry.pid}`));
      // positive control: the same lock naming a live process that is not ferry is taken over
      writeFileSync(path.join(dir, 'ferry-start.pid'), `${other.pid}\n`);
      const { result } = await choose({ FERRY_DATA_DIR: dir });
      assert.equal(result.mode, 'private-redis');
    } finally {
      ferry.kill();
      other.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
