import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedQueue } from '../../src/media/rpc/keyed-queue';

/** The control connection's per-key FIFO: a failing task's error reaches the owner, and the queue goes on. */

test('a task that rejects or throws hands its error to onError and the next task of its key still runs, in order', { timeout: 5_000 }, async () => {
  const errors: [string, string][] = [];
  const order: string[] = [];
  const q = new KeyedQueue((key, err) => errors.push([key, (err as Error).message]));
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  q.run('p1', async () => {
    await gate;
    order.push('a');
    throw new Error('boom a');
  });
  q.run('p1', () => {
    order.push('b');
    throw new Error('boom b'); // synchronous throw inside the task
  });
  q.run('p2', async () => {
    order.push('other key');
  });
  const done = new Promise<void>((resolve) => q.run('p1', async () => {
    order.push('c');
    resolve();
  }));
  release();
  await done;
  assert.deepEqual(order, ['other key', 'a', 'b', 'c'], 'one key in order; another key does not wait for it');
  assert.deepEqual(errors, [['p1', 'boom a'], ['p1', 'boom b']]);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(q.size, 0, 'every key is forgotten once its queue is empty');
});

test('positive control: tasks that succeed report nothing', { timeout: 5_000 }, async () => {
  const errors: unknown[] = [];
  const q = new KeyedQueue((_key, err) => errors.push(err));
  const ran: number[] = [];
  await new Promise<void>((resolve) => {
    q.run('k', async () => { ran.push(1); });
    q.run('k', async () => { ran.push(2); resolve(); });
  });
  assert.deepEqual(ran, [1, 2]);
  assert.deepEqual(errors, []);
});

test('a handler that throws does not break the queue', { timeout: 5_000 }, async () => {
  const q = new KeyedQueue(() => { throw new Error('logger broken'); });
  q.run('k', async () => { throw new Error('task failed'); });
  await new Promise<void>((resolve) => q.run('k', async () => resolve()));
});
