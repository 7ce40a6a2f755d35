import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { createLogger } from '../../src/common/logger';
import { MediaServerSet } from '../../src/gateway/media-servers/media-server-set';
import { pollUntil } from '../helpers/wait-for';

/**
 * `ferry_media_server_unanswered_total{url}` (docs/gateway.md, "A media server that stops answering"):
 * the gateway's real MediaServerSet and kurento-client against two stand-in Kurento servers (real
 * WebSocket servers answering ping, describe and connect as KMS does). One of them stops answering on
 * its open connection: it is dropped and counted once, the other is not counted; a connection the
 * server closes is a loss too, but not counted as unanswered. The whole path with real processes
 * (SIGSTOP) is F13, test/faults/f13-media-server-deaf.test.ts.
 */
class StandInKurento {
  readonly wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  /** the server side of the connections, newest last */
  readonly sockets: WebSocket[] = [];
  /** connections the server no longer answers (still open) */
  private readonly deaf = new Set<WebSocket>();

  constructor() {
    this.wss.on('connection', (ws) => {
      this.sockets.push(ws);
      ws.on('error', () => undefined);
      ws.on('message', (data) => {
        if (this.deaf.has(ws)) return;
        const msg = JSON.parse(data.toString()) as { id?: unknown; method?: string; params?: { operation?: string } };
        if (msg.id === undefined) return;
        // kurento-client's start-up check of the server's modules (getInfo) gets the three it registers
        const modules = ['core', 'elements', 'filters'].map((name) => ({ name, version: '7.3.0', factories: [] }));
        const result = msg.method === 'ping' ? { value: 'pong' }
          : msg.method === 'describe' ? { sessionId: 'stand-in', type: 'ServerManager', qualifiedType: 'kurento.ServerManager', hierarchy: ['kurento.MediaObject'] }
          : msg.method === 'invoke' && msg.params?.operation === 'getInfo' ? { sessionId: 'stand-in', value: { version: '7.3.0', type: 'KMS', modules } }
          : { sessionId: 'stand-in' };
        ws.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
      });
    });
  }

  async listening(): Promise<string> {
    // the server may have started listening before this was called
    if (this.wss.address() === null) await once(this.wss, 'listening');
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/kurento`;
  }

  /** the newest connection stays open and is answered no more (a hung server, black-holed packets) */
  stopAnswering(): void {
    this.deaf.add(this.sockets.at(-1)!);
  }

  /** the newest connection is closed from the server's side */
  closeNewest(): void {
    this.sockets.at(-1)!.terminate();
  }

  openConnections(): number {
    return this.sockets.filter((s) => s.readyState === s.OPEN).length;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

describe('ferry_media_server_unanswered_total', { timeout: 20_000 }, () => {
  const a = new StandInKurento();
  const b = new StandInKurento();
  let urlA = '';
  let urlB = '';
  let set: MediaServerSet | undefined;

  before(async () => {
    urlA = await a.listening();
    urlB = await b.listening();
  });

  after(async () => {
    set?.close();
    await a.close();
    await b.close();
  });

  /** one series of the set's /metrics lines, or undefined when absent */
  function metric(name: string, url: string): number | undefined {
    const line = set!.metricLines().find((l) => l.startsWith(`${name}{url="${url}"} `));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  }

  test('a server dropped as not answering is counted once, per server; a connection the server closes is not counted', async () => {
    set = new MediaServerSet({
      urls: [urlA, urlB],
      log: createLogger('test-media-unanswered'),
      statsIntervalMs: 60_000,
      liveCallsOn: () => 0,
      urlOfPipeline: () => undefined,
      watch: () => ({ stop: () => undefined }),
      pingTimeoutMs: 600,
    });
    await set.connect(5000);
    const connA = await set.connectionFor(urlA, '');
    let lostA = 0;
    connA.on('lost', () => lostA++);
    const lines = set.metricLines();
    assert.ok(lines.includes('# TYPE ferry_media_server_unanswered_total counter'), lines.join('\n'));
    assert.equal(metric('ferry_media_server_unanswered_total', urlA), 0, 'A starts at 0');
    assert.equal(metric('ferry_media_server_unanswered_total', urlB), 0, 'B starts at 0');

    // A stops answering on its open connection: dropped after the bound, counted once, then back up
    const firstA = a.sockets.at(-1)!;
    a.stopAnswering();
    await pollUntil(() => metric('ferry_media_server_unanswered_total', urlA) === 1, { timeoutMs: 5000, what: 'A counted as not answering' });
    assert.equal(lostA, 1, 'A was lost once');
    await pollUntil(() => firstA.readyState === firstA.CLOSED, { timeoutMs: 5000, what: "A's silent connection dropped by the gateway" });
    await pollUntil(() => connA.isUp && metric('ferry_media_server_up', urlA) === 1, { timeoutMs: 5000, what: 'A up again on a new connection' });
    assert.equal(metric('ferry_media_server_unanswered_total', urlA), 1, 'A counted once for one silence');
    assert.equal(metric('ferry_media_server_unanswered_total', urlB), 0, 'B answered all along: not counted (over the same window)');
    assert.equal(metric('ferry_media_server_up', urlB), 1, 'B stayed up');

    // A closes its connection: a loss (positive control: lost is seen), not an unanswered one
    a.closeNewest();
    await pollUntil(() => lostA === 2, { timeoutMs: 5000, what: "A lost by its connection's close" });
    await pollUntil(() => connA.isUp && a.openConnections() === 1, { timeoutMs: 5000, what: 'A up again after the close' });
    assert.equal(metric('ferry_media_server_unanswered_total', urlA), 1, 'a closed connection is not counted as unanswered');
    assert.equal(metric('ferry_media_server_unanswered_total', urlB), 0);
  });
});
