import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { isPingAnswer, MediaLiveness, mediaPingIntervalMs } from '../../src/gateway/kurento/media-liveness';
import { pollUntil } from '../helpers/wait-for';

/**
 * The gateway's watch of a media server's control connection (docs/gateway.md, "A media server that
 * stops answering"), on a stand-in transport: what it writes is the Kurento `ping`, the answers to
 * it are taken off the stream (kurento-client's JSON-RPC layer never sees them) while every other
 * frame passes, a transport that answers stays alive and one that does not is deaf after the bound.
 * The whole path with real processes (SIGSTOP) is F13, test/faults/f13-media-server-deaf.test.ts.
 */
class StandInTransport extends EventEmitter {
  readonly written: { id: string; method: string; params: unknown }[] = [];
  /** answers each ping at once (as ferry media and KMS do), unless deaf */
  constructor(private readonly answering: boolean) {
    super();
  }
  write(frame: string): boolean {
    const msg = JSON.parse(frame) as { id: string; method: string; params: unknown };
    this.written.push(msg);
    if (this.answering) setImmediate(() => this.emit('data', Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { value: 'pong' } }))));
    return true;
  }
}

describe('media server liveness', { timeout: 30_000 }, () => {
  test('the ping interval is a fifth of the bound, between 100 ms and 2 s', () => {
    assert.equal(mediaPingIntervalMs(15_000), 2000);
    assert.equal(mediaPingIntervalMs(3000), 600);
    assert.equal(mediaPingIntervalMs(200), 100);
  });

  test("answers to the gateway's pings are recognised; kurento-client's own responses and requests are not", () => {
    assert.equal(isPingAnswer(Buffer.from('{"jsonrpc":"2.0","id":"ferry-liveness-3","result":{"value":"pong"}}')), true);
    assert.equal(isPingAnswer('{"jsonrpc":"2.0","id":"ferry-liveness-4","error":{"code":-32601,"message":"x"}}'), true, 'an error is an answer too');
    assert.equal(isPingAnswer('{"jsonrpc":"2.0","id":7,"result":{"value":"pong"}}'), false, "kurento-client's own ping");
    assert.equal(isPingAnswer('{"jsonrpc":"2.0","method":"onEvent","params":{"value":{"data":"ferry-liveness-1"}}}'), false, 'an event that merely contains the text');
    assert.equal(isPingAnswer('ferry-liveness- not json'), false);
  });

  test('a server that answers stays alive, its answers never reach the stream\'s readers; one that does not is deaf after the bound (the same window)', async () => {
    const timeoutMs = 600;
    const alive = new StandInTransport(true);
    const deaf = new StandInTransport(false);
    const seenByReader: string[] = [];
    alive.on('data', (chunk: Buffer) => seenByReader.push(chunk.toString()));
    let aliveDeaf = false;
    let deafAt = 0;
    const watchAlive = new MediaLiveness({ timeoutMs, onDeaf: () => { aliveDeaf = true; } });
    const watchDeaf = new MediaLiveness({ timeoutMs, onDeaf: () => { deafAt = Date.now(); } });
    const startedAt = Date.now();
    watchAlive.start(alive);
    watchDeaf.start(deaf);
    try {
      await pollUntil(() => deafAt > 0, { timeoutMs: 5000, what: 'the silent transport found deaf' });
      assert.ok(deafAt - startedAt >= timeoutMs, `not before the bound: ${deafAt - startedAt} ms`);
      // the answering one, over the same window and then past a second bound
      await pollUntil(() => Date.now() - deafAt >= timeoutMs, { timeoutMs: 5000, what: 'a second bound passed' });
      assert.equal(aliveDeaf, false, 'a server that answers is never deaf');
      assert.ok(alive.written.length >= 3, `pinged: ${alive.written.length}`);
      assert.deepEqual(alive.written[0]!.method, 'ping');
      assert.deepEqual(seenByReader, [], 'no answer reached the reader');
      // every other frame passes untouched
      alive.emit('data', Buffer.from('{"jsonrpc":"2.0","id":12,"result":{"value":"x"}}'));
      assert.deepEqual(seenByReader, ['{"jsonrpc":"2.0","id":12,"result":{"value":"x"}}']);
      const pingsWhenDeaf = deaf.written.length;
      await pollUntil(() => alive.written.length >= pingsWhenDeaf + 2, { timeoutMs: 5000, what: 'two more pings on the live one' });
      assert.equal(deaf.written.length, pingsWhenDeaf, 'the deaf watch stopped itself');
    } finally {
      watchAlive.stop();
      watchDeaf.stop();
    }
  });
});
