import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { MediaConnection } from '../../src/gateway/kurento/media-connection';
import { probeMediaObject } from '../../src/gateway/kurento/media-object-probe';
import { CallMedia } from '../../src/gateway/kurento/call-media';
import { MediaServerProcess } from '../helpers/media-server-process';
import { TcpCutter } from '../helpers/media-tcp-cutter';
import { freePort } from '../helpers/free-port';
import { pollUntil } from '../helpers/wait-for';

/**
 * The gateway's media connection (the real kurento-client against a real `ferry media` process)
 * survives the media server dying, being down and coming back: the process never crashes on the
 * refused reconnects, `isUp` follows reality, `restored` reports whether the session survived
 * (a restarted server: no; a mere connection blip: yes) and the objects are checked by id.
 */
describe('gateway media connection: media server killed, restarted, blipped', { timeout: 60_000 }, () => {
  const servers: MediaServerProcess[] = [];
  const conns: MediaConnection[] = [];
  let cutter: TcpCutter | undefined;
  /**
   * The fresh media servers the tests take (one each, never shared), started together before the
   * first test: a start is seconds of CPU, and started one after another they were most of this file's
   * time. They are started before any test runs, so no start competes with a test's timed window.
   */
  const fresh: MediaServerProcess[] = [];
  before(async () => {
    const started = await Promise.allSettled(Array.from({ length: 5 }, () => MediaServerProcess.start()));
    for (const r of started) {
      if (r.status === 'fulfilled') {
        servers.push(r.value);
        fresh.push(r.value);
      }
    }
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  });
  /** a media server no other test has used */
  function freshMediaServer(): MediaServerProcess {
    const media = fresh.shift();
    assert.ok(media, 'a prestarted media server is left');
    return media;
  }
  after(async () => {
    conns.forEach((c) => c.close());
    await cutter?.close();
    for (const s of servers) await s.stop();
  });

  /** refused connection attempts per connection, counted from its 'media connection attempt failed' debug line */
  const refusedAttempts = new Map<MediaConnection, number>();

  function connection(url: string): MediaConnection {
    const log = createLogger('test-media-connection');
    const debug = log.debug.bind(log);
    const c = new MediaConnection(url, Object.assign(log, {
      debug: ((message: string, ...rest: unknown[]) => {
        if (message === 'media connection attempt failed') refusedAttempts.set(c, (refusedAttempts.get(c) ?? 0) + 1);
        return (debug as (m: string, ...r: unknown[]) => unknown)(message, ...rest);
      }) as typeof log.debug,
    }));
    conns.push(c);
    return c;
  }

  /** Resolves once `c` has seen `n` more refused attempts than it had when called. */
  async function refusedAttemptsMore(c: MediaConnection, n: number, what: string): Promise<void> {
    const base = refusedAttempts.get(c) ?? 0;
    await pollUntil(() => (refusedAttempts.get(c) ?? 0) >= base + n, { timeoutMs: 10_000, what: `${n} refused attempts ${what}` });
  }

  function waitEvent<T extends unknown[]>(c: MediaConnection, event: 'lost' | 'restored', timeoutMs: number): Promise<{ at: number; args: T }> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no '${event}' within ${timeoutMs} ms`)), timeoutMs);
      c.once(event, (...args: unknown[]) => {
        clearTimeout(t);
        resolve({ at: Date.now(), args: args as T });
      });
    });
  }

  test('SIGKILL mid-call: lost at once, no crash while refused, restored (new session) < 1.5 s after the server is back; the old pipeline is gone, a new one works', async () => {
    const media = freshMediaServer();
    const port = media.port;
    const conn = connection(media.url);
    await conn.connect();
    assert.equal(conn.isUp, true);
    const pipeline = await conn.createPipeline();
    assert.deepEqual(await probeMediaObject(pipeline, 1000), { present: true }, 'positive control: the probe finds an object that exists');

    const lost = waitEvent(conn, 'lost', 3000);
    const killedAt = Date.now();
    process.kill(media.pid!, 'SIGKILL');
    const lostAt = (await lost).at;
    assert.ok(lostAt - killedAt < 1000, `lost ${lostAt - killedAt} ms after the kill`);
    assert.equal(conn.isUp, false);
    // refused reconnect attempts: this process must survive them (it would crash unguarded)
    await refusedAttemptsMore(conn, 3, 'after the kill');
    assert.equal(conn.isUp, false);

    const restored = waitEvent<[boolean]>(conn, 'restored', 10_000);
    const again = await MediaServerProcess.start({ FERRY_MEDIA_PORT: String(port) });
    servers.push(again);
    const backAt = Date.now();
    const r = await restored;
    assert.equal(r.args[0], false, 'a restarted server does not know the old session');
    assert.ok(r.at - backAt < 1500, `restored ${r.at - backAt} ms after the server was ready`);
    assert.equal(conn.isUp, true);
    const probe = await probeMediaObject(pipeline, 1000);
    assert.equal(probe.present, false, 'the old pipeline is gone on the restarted server');
    assert.match((probe as { detail: string }).detail, /not found/);
    const fresh = await conn.createPipeline();
    assert.equal((await again.stats()).pipelines, 1, 'a new pipeline on the restarted server');
    await fresh.release();
    console.log(`# lost ${lostAt - killedAt} ms after SIGKILL; restored ${r.at - backAt} ms after the server was back`);
  });

  test('idle restart (no objects): no crash, restored', async () => {
    const media = freshMediaServer();
    const port = media.port;
    const conn = connection(media.url);
    await conn.connect();
    const lost = waitEvent(conn, 'lost', 3000);
    await media.stop();
    await lost;
    const restored = waitEvent<[boolean]>(conn, 'restored', 10_000);
    const again = await MediaServerProcess.start({ FERRY_MEDIA_PORT: String(port) });
    servers.push(again);
    await restored;
    assert.equal(conn.isUp, true);
    const p = await conn.createPipeline();
    await p.release();
  });

  test('a control-connection blip: restored with the same session, the pipeline is still there', async () => {
    const media = freshMediaServer();
    cutter = await TcpCutter.start(media.port);
    const conn = connection(`ws://127.0.0.1:${cutter.port}/kurento`);
    await conn.connect();
    const pipeline = await conn.createPipeline();
    const lost = waitEvent(conn, 'lost', 3000);
    const restored = waitEvent<[boolean]>(conn, 'restored', 5000);
    cutter.cut();
    await lost;
    const r = await restored;
    assert.equal(r.args[0], true, 'the server re-bound our session');
    assert.deepEqual(await probeMediaObject(pipeline, 1000), { present: true }, 'the pipeline survived the blip');
    await pipeline.release();
    assert.equal((await media.stats()).pipelines, 0);
  });

  test('started before the media server: connect() waits through refused attempts and resolves once it is up', async () => {
    const port = await freePort({ protocols: ['tcp'] });
    const conn = connection(`ws://127.0.0.1:${port}/kurento`);
    const connecting = conn.connect(20_000);
    await refusedAttemptsMore(conn, 3, 'before the media server starts');
    assert.equal(conn.isUp, false);
    const media = await MediaServerProcess.start({ FERRY_MEDIA_PORT: String(port) });
    servers.push(media);
    const readyAt = Date.now();
    await connecting;
    assert.ok(Date.now() - readyAt < 1500, `connected ${Date.now() - readyAt} ms after the server was ready`);
    assert.equal(conn.isUp, true);
    const p = await conn.createPipeline();
    assert.equal((await media.stats()).pipelines, 1);
    await p.release();
  });

  test('a call ending while the control connection is down: its pipeline is released once the connection is back (no leak)', async () => {
    const media = freshMediaServer();
    const relay = await TcpCutter.start(media.port);
    try {
      const log = createLogger('test-media-connection');
      const conn = connection(`ws://127.0.0.1:${relay.port}/kurento`);
      await conn.connect();
      const callMedia = await CallMedia.build(conn, { caller: 'rtp', callee: 'rtp' }, log, systemClock);
      assert.equal((await media.stats()).pipelines, 1);
      const lost = waitEvent(conn, 'lost', 3000);
      relay.refuse(true);
      relay.cut();
      await lost;
      const releaseStarted = Date.now();
      await callMedia.release(); // must not hang on the unreachable server
      assert.ok(Date.now() - releaseStarted < 2500, `release returned after ${Date.now() - releaseStarted} ms`);
      assert.equal((await media.stats()).pipelines, 1, 'nothing reached the server yet');
      const restored = waitEvent<[boolean]>(conn, 'restored', 5000);
      relay.refuse(false);
      assert.equal((await restored).args[0], true, 'same session: the pipeline survived the outage');
      await media.waitForStats((st) => st.pipelines === 0 && st.boundPorts === 0, 3000);
    } finally {
      await relay.close();
    }
  });

  test('the events are emitted once per loss (no repeated lost while down)', async () => {
    const media = freshMediaServer();
    const conn = connection(media.url);
    await conn.connect();
    let losses = 0;
    conn.on('lost', () => losses++);
    const lost = once(conn, 'lost');
    process.kill(media.pid!, 'SIGKILL');
    await lost;
    await refusedAttemptsMore(conn, 4, 'after the loss');
    assert.equal(losses, 1);
  });
});
