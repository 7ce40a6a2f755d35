import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import WebSocket from 'ws';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { RELAY_PROCESS_FLAG } from '../../src/media/workers/worker-protocol';
import { connectKurento, type KurentoClientLike } from '../helpers/media-kurento';
import { pollUntil } from '../helpers/wait-for';
import { descendants } from '../helpers/process-tree';

/**
 * A kurento `ping` is answered at once, never behind a request still at work: ferry media's relay workers
 * (child processes here) are stopped with SIGSTOP, so a `create MediaPipeline` (sent by a real
 * kurento-client, and by hand on the control connection that then pings) waits for a worker that never
 * answers. The ping on that same connection must still be answered; before, it waited in the same queue
 * as the pipeline creation, so a server whose requests hung looked dead to the client's ping, and a client
 * whose pings go unanswered drops the connection (docs/media-server.md, "Relay workers").
 * Positive control: the same ping is answered before the workers are stopped, and the creation really
 * stays pending while the ping is answered.
 */

/** The relay worker processes among this test's own descendants (their command line carries the relay flag). */
function relayChildren(): number[] {
  const out: number[] = [];
  for (const { pid } of descendants(process.pid)) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(RELAY_PROCESS_FLAG)) out.push(pid);
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** A bare JSON-RPC client on one control connection: frames by id. */
class RawControl {
  private readonly answers = new Map<number, Record<string, unknown>>();
  private readonly waiters = new Map<number, (frame: Record<string, unknown>) => void>();
  private nextId = 1;
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Record<string, unknown>;
      if (typeof frame.id !== 'number') return;
      this.answers.set(frame.id, frame);
      this.waiters.get(frame.id)?.(frame);
    });
  }

  static async open(url: string): Promise<RawControl> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new RawControl(ws);
  }

  send(method: string, params: Record<string, unknown>): number {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    return id;
  }

  answered(id: number): boolean {
    return this.answers.has(id);
  }

  /** The answer to `id`, or undefined when none came within `ms`. */
  answer(id: number, ms: number): Promise<Record<string, unknown> | undefined> {
    const got = this.answers.get(id);
    if (got) return Promise.resolve(got);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        resolve(undefined);
      }, ms);
      this.waiters.set(id, (frame) => {
        clearTimeout(timer);
        this.waiters.delete(id);
        resolve(frame);
      });
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

describe('media control: ping is never queued behind work', { timeout: 90_000 }, () => {
  let server: RunningMediaServer;
  let client: KurentoClientLike;
  let raw: RawControl;
  let stopped: number[] = [];

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1', workers: 2, workerKind: 'process', lagWindowMs: 1000 } });
    await server.workersReady;
    client = await connectKurento(server.url);
    raw = await RawControl.open(server.url);
  });
  after(async () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* already gone */
      }
    }
    raw?.close();
    client?.close();
    await server?.close();
  });

  test('a ping on a connection whose pipeline creation hangs is answered at once', { timeout: 60_000 }, async () => {
    const before = await raw.answer(raw.send('ping', { interval: 5000 }), 5000);
    assert.equal((before?.result as { value?: string } | undefined)?.value, 'pong', 'control: a ping is answered while the workers run');

    const children = await pollUntil(() => {
      const c = relayChildren();
      return c.length === 2 ? c : undefined;
    }, { timeoutMs: 10_000, what: 'both relay worker processes' });
    for (const pid of children) process.kill(pid, 'SIGSTOP');
    stopped = children;

    let kurentoCreateSettled = false;
    const created = client.create('MediaPipeline').then(
      () => { kurentoCreateSettled = true; },
      () => { kurentoCreateSettled = true; },
    );
    void created;
    const createId = raw.send('create', { type: 'MediaPipeline', constructorParams: {}, properties: {} });

    const pong = await raw.answer(raw.send('ping', { interval: 5000 }), 3000);
    assert.equal(raw.answered(createId), false, 'control: the pipeline creation is still waiting for a stopped worker');
    assert.equal(kurentoCreateSettled, false, "control: kurento-client's pipeline creation is still waiting too");
    assert.ok(pong, 'the ping was answered while a pipeline creation on the same connection hung');
    assert.equal((pong.result as { value?: string }).value, 'pong');
  });
});
