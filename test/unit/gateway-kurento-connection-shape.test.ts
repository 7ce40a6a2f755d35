import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { KClient, KurentoFactory } from '../../src/gateway/kurento/kurento-types';
import { isPingAnswer } from '../../src/gateway/kurento/media-liveness';

/**
 * The gateway's media liveness watch (src/gateway/kurento/media-liveness.ts) and its drop of a deaf
 * server (media-connection.ts) reach into kurento-client 7.3.0's private reconnector: the client's
 * `_re`, its current transport `_re._connection` (websocket-stream's duplex: `write(frame)` sends one
 * WebSocket message, each message received is one 'data' event), and that transport's
 * `socket._socket` (the ws WebSocket's TCP socket). This pins those shapes on the installed
 * kurento-client against a real WebSocket server: an upgrade that changes them fails here, instead of
 * deaf media servers silently going unnoticed.
 */
describe('kurento-client private transport shape (media liveness)', { timeout: 15_000 }, () => {
  let wss: WebSocketServer;
  let url: string;
  const received: string[] = [];
  let serverSide: WebSocket | undefined;

  before(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/kurento`;
    wss.on('connection', (ws) => {
      serverSide = ws;
      ws.on('message', (data) => {
        const text = data.toString();
        received.push(text);
        const msg = JSON.parse(text) as { id?: unknown; method?: string };
        // answers as a Kurento server would: ping with pong, describe of the ServerManager, the rest with a session id
        if (msg.id === undefined) return;
        const result = msg.method === 'ping' ? { value: 'pong' }
          : msg.method === 'describe' ? { sessionId: 'shape-test', type: 'ServerManager', qualifiedType: 'kurento.ServerManager', hierarchy: ['kurento.MediaObject'] }
          : { sessionId: 'shape-test' };
        ws.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
      });
    });
  });

  after(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });

  test('_re._connection writes one message per frame, emits each answer as one data event, and holds its TCP socket at socket._socket', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const kurento = require('kurento-client') as KurentoFactory;
    // the gateway keeps the object kurento() returns (a thenable KurentoClient), as here
    const pending = kurento(url, { failAfter: 1, request_timeout: 5000 });
    const client = pending as unknown as KClient;
    await pending;
    const re = client._re;
    assert.ok(re, 'the client holds its reconnector at _re');
    assert.equal(re.connected, true, '_re.connected once connected');
    const con = re._connection as { write?: unknown; on?: unknown; socket?: { _socket?: unknown } } | undefined;
    assert.ok(con, '_re._connection is the current transport');
    assert.equal(typeof con.write, 'function', 'the transport has write()');
    assert.equal(typeof con.on, 'function', 'the transport is an EventEmitter');
    assert.ok(con.socket?._socket instanceof net.Socket, 'the transport\'s socket._socket is the TCP socket');
    // swallow errors the reconnector's transports may emit once the server side is gone
    (con as unknown as NodeJS.EventEmitter).on('error', () => undefined);
    re.on('error', () => undefined);

    const frame = JSON.stringify({ jsonrpc: '2.0', id: 'ferry-liveness-1', method: 'ping', params: {} });
    const answer = new Promise<unknown>((resolve) => {
      (con as unknown as NodeJS.EventEmitter).on('data', (chunk: unknown) => {
        if (isPingAnswer(chunk)) resolve(chunk);
      });
    });
    (con.write as (f: string) => unknown).call(con, frame);
    const chunk = await answer;
    assert.ok(received.includes(frame), 'the frame written reached the server as one message, unchanged');
    assert.deepEqual(JSON.parse(String(chunk)), { jsonrpc: '2.0', id: 'ferry-liveness-1', result: { value: 'pong' } },
      'the answer came as one whole data event');

    // destroying socket._socket drops the connection: the server sees it close
    assert.ok(serverSide, 'the server side of the connection');
    const closed = once(serverSide, 'close');
    re.reconnect = false;
    (con.socket!._socket as net.Socket).destroy();
    await closed;
    re.disconnect();
  });
});
