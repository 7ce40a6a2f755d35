import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { FakeClock } from '../../src/common/clock';
import { ElementTypeRegistry } from '../../src/media/objects/element-type';
import { MediaElement } from '../../src/media/objects/media-element';
import type { ElementContext } from '../../src/media/objects/object-context';
import { loadMediaConfig } from '../../src/media/server/media-config';
import { MediaSet } from '../../src/media/server/media-set';
import { PortAllocator } from '../../src/media/rtp/port-allocator';
import { captureLog } from '../helpers/captured-log';

/**
 * A pipeline whose element fails to tear down is not forgotten: the failure is logged on one line,
 * counted in /stats, and the teardown is retried on the media server's clock until the element's
 * socket is really closed.
 */

/** An element holding one real UDP socket whose teardown throws its first `failures` times. */
class StubbornElement extends MediaElement {
  static failures = 0;
  static attempts = 0;
  readonly socket = dgram.createSocket('udp4');
  private open = true;

  constructor(ctx: ElementContext) {
    super(ctx, 'StubbornEndpoint');
  }

  override boundPorts(): number {
    return this.open ? 1 : 0;
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    StubbornElement.attempts++;
    if (StubbornElement.attempts <= StubbornElement.failures) throw new Error(`socket busy (attempt ${StubbornElement.attempts})`);
    if (this.open) {
      this.open = false;
      await new Promise<void>((resolve) => this.socket.close(() => resolve()));
    }
    await super.teardown(options);
  }
}

async function world(failures: number) {
  StubbornElement.failures = failures;
  StubbornElement.attempts = 0;
  const registry = new ElementTypeRegistry();
  const created: StubbornElement[] = [];
  registry.register({
    type: 'StubbornEndpoint',
    hierarchy: ['kurento.MediaElement'],
    events: [],
    create: async (ctx) => {
      const e = new StubbornElement(ctx);
      await new Promise<void>((resolve) => e.socket.bind(0, '127.0.0.1', resolve));
      created.push(e);
      return e;
    },
  });
  const clock = new FakeClock();
  const { logger, lines } = captureLog();
  const set = new MediaSet({
    config: loadMediaConfig({ port: 0 }, {}),
    clock,
    logger,
    elementTypes: registry,
    ports: new PortAllocator('127.0.0.1', 0, 0),
    orphanTtlMs: 240_000,
    teardownRetryPolicy: { baseMs: 1000, maxMs: 30_000, maxRetries: 3 },
  });
  const session = set.getOrCreateSession('s1');
  const pid = await set.create(session, 'MediaPipeline', {});
  await set.create(session, 'StubbornEndpoint', { mediaPipeline: pid });
  return { set, clock, lines, pid, created };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('an element teardown that fails is logged, counted and retried on the clock until its socket is closed', { timeout: 10_000 }, async () => {
  const { set, clock, lines, pid, created } = await world(2);
  await set.release(pid);
  assert.equal(set.pipelineCount(), 0, 'the pipeline itself is gone for the clients');
  let stats = set.stats() as { boundPorts: number; teardownFailures: { failures: number; pending: number; abandoned: number } };
  assert.deepEqual(stats.teardownFailures, { failures: 1, pending: 1, abandoned: 0 });
  const failedLine = lines.find((l) => l.message === 'teardown failed, will retry');
  assert.ok(failedLine, JSON.stringify(lines));
  assert.equal(failedLine.pipeline, pid);
  assert.match(String(failedLine.error), /socket busy \(attempt 1\)/);
  assert.equal(failedLine.stack, undefined, 'one line, no stack');

  clock.advance(999);
  await flush();
  assert.equal(StubbornElement.attempts, 1, 'no retry before the first delay');
  clock.advance(1);
  await flush();
  assert.equal(StubbornElement.attempts, 2, 'the first retry at 1 s');
  assert.ok(lines.some((l) => l.message === 'teardown retry failed' && l.retries === 1));
  clock.advance(2000);
  for (let i = 0; i < 5 && StubbornElement.attempts < 3; i++) await flush();
  for (let i = 0; i < 20 && !lines.some((l) => l.message === 'teardown succeeded on retry'); i++) await flush();
  assert.equal(StubbornElement.attempts, 3, 'the second retry 2 s later');
  assert.ok(lines.some((l) => l.message === 'teardown succeeded on retry'), JSON.stringify(lines.map((l) => l.message)));
  stats = set.stats() as typeof stats;
  assert.deepEqual(stats.teardownFailures, { failures: 2, pending: 0, abandoned: 0 });
  assert.equal(created[0]!.boundPorts(), 0, 'the socket is closed');
  assert.equal(clock.pending(), 0, 'no timer left behind');
});

test('positive control: a teardown that succeeds at once logs no failure and leaves nothing pending', { timeout: 10_000 }, async () => {
  const { set, clock, lines, pid, created } = await world(0);
  await set.release(pid);
  const stats = set.stats() as { teardownFailures: { failures: number; pending: number } };
  assert.deepEqual(stats.teardownFailures, { failures: 0, pending: 0, abandoned: 0 });
  assert.ok(!lines.some((l) => String(l.message).startsWith('teardown')));
  assert.ok(lines.some((l) => l.message === 'releasing pipeline'), 'the logger is captured');
  assert.equal(created[0]!.boundPorts(), 0);
  assert.equal(clock.pending(), 0);
});

test('a teardown that keeps failing is abandoned after the last retry and logged as abandoned', { timeout: 10_000 }, async () => {
  const { set, clock, lines, pid, created } = await world(100);
  await set.release(pid);
  for (const ms of [1000, 2000, 4000]) {
    clock.advance(ms);
    for (let i = 0; i < 10; i++) await flush();
  }
  const stats = set.stats() as { teardownFailures: { failures: number; pending: number; abandoned: number } };
  assert.deepEqual(stats.teardownFailures, { failures: 4, pending: 0, abandoned: 1 });
  assert.ok(lines.some((l) => l.message === 'teardown abandoned' && l.retries === 3));
  assert.equal(clock.pending(), 0);
  created[0]!.socket.close();
});

test('shutdown (closeAll) retries pending teardowns at once instead of leaving them to timers', { timeout: 10_000 }, async () => {
  const { set, clock, lines, pid, created } = await world(1);
  await set.release(pid);
  assert.equal((set.stats() as { teardownFailures: { pending: number } }).teardownFailures.pending, 1);
  await set.closeAll();
  assert.equal((set.stats() as { teardownFailures: { pending: number } }).teardownFailures.pending, 0);
  assert.ok(lines.some((l) => l.message === 'teardown succeeded on retry'));
  assert.equal(created[0]!.boundPorts(), 0);
  assert.equal(clock.pending(), 0);
});
