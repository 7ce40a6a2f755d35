import assert from 'node:assert/strict';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { createLogger } from '../../src/common/logger';
import { CallEvent, LocalCallEventBus } from '../../src/gateway/events/call-events';
import { EventStream } from '../../src/gateway/events/event-stream';
import { waitFor } from '../helpers/stack';

/** EventStream on a real HTTP server and real WebSocket clients (the token check is the HTTP server's: see the integration test) */
describe('/api/events stream', { timeout: 20_000 }, () => {
  const bus = new LocalCallEventBus('gw', Date.now);
  const stream = new EventStream(bus, createLogger('test.events'), { maxClients: 2, maxBufferedBytes: 64 * 1024 });
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => stream.handleUpgrade(req, socket, head));
  let url = '';

  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/api/events`;
    stream.start();
  });
  after(async () => {
    stream.stop();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  function open(query = ''): Promise<{ ws: WebSocket; got: CallEvent[] }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url + query);
      const got: CallEvent[] = [];
      ws.on('message', (m) => got.push(JSON.parse(String(m)) as CallEvent));
      ws.once('open', () => resolve({ ws, got }));
      ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }
  const closed = (ws: WebSocket): Promise<number> => new Promise((r) => (ws.readyState === WebSocket.CLOSED ? r(0) : ws.once('close', (code) => r(code))));

  test('?types= narrows the stream; unknown types are refused with 400; past the cap 503', { timeout: 5000 }, async () => {
    const all = await open();
    const ended = await open('?types=call.ended');
    await assert.rejects(open('?types=call.rang'), /HTTP 400/);
    await assert.rejects(open(), /HTTP 503/, 'third client over the cap of 2');
    bus.publish({ type: 'call.answered', callId: 'c1', data: {} });
    bus.publish({ type: 'call.ended', callId: 'c1', tags: { crm: '42' }, data: { reason: 'sip-bye' } });
    await waitFor(() => all.got.length === 2 && ended.got.length === 1, 2000, 5, 'events at both clients');
    assert.deepEqual(all.got.map((e) => e.type), ['call.answered', 'call.ended']);
    assert.deepEqual(ended.got[0], all.got[1]);
    assert.deepEqual(ended.got[0]!.tags, { crm: '42' });
    all.ws.close();
    ended.ws.close();
    await Promise.all([closed(all.ws), closed(ended.ws)]);
    await waitFor(() => stream.clientCount === 0, 2000, 5, 'clients gone');
  });

  test('a client that does not read is dropped; a reading client keeps its stream', { timeout: 10_000 }, async () => {
    const slow = await open();
    const fast = await open();
    const slowSocket = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    slowSocket.pause();
    const big = 'x'.repeat(16 * 1024);
    const dropped = closed(slow.ws);
    let sent = 0;
    while (stream.slowClientsDropped === 0 && sent < 5000) {
      bus.publish({ type: 'call.held', callId: `c${sent++}`, data: { big } });
      if (sent % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.equal(stream.slowClientsDropped, 1, `dropped after ${sent} events`);
    // reading again, the client finds its connection closed
    slowSocket.resume();
    await dropped;
    assert.ok(slow.got.length < sent, 'the slow client missed events');
    // positive control: the reading client got every event
    await waitFor(() => fast.got.length === sent, 5000, 10, `all ${sent} events at the reading client`);
    assert.equal(stream.clientCount, 1);
    assert.match(stream.metricLines().join('\n'), /ferry_event_stream_dropped_total\{reason="slow"\} 1/);
    fast.ws.close();
    await closed(fast.ws);
  });
});
