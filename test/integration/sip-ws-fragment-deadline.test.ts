/**
 * A SIP message over WebSocket must be complete within the header timeout of its first byte, as a SIP
 * message's headers over TCP (docs/security.md "Connections"), however it is split into WebSocket frames.
 * A ping or pong between the fragments of a message used to clear that deadline (a ping counts as traffic,
 * not as a message), so a stranger sending one fragment and then a ping every few seconds held the half-read
 * message, and the connection, until the idle timeout. Now pings and pongs do not touch the deadline of a
 * message in progress. Positive control: a message in three fragments with pings between them, completed
 * within the deadline, is served, and a connection that only answers pings stays open past the deadline.
 *
 * ferry sip in process (real WS sockets, the `ws` client offering the `sip` subprotocol): header timeout
 * 1 s, idle timeout 20 s, pings from ferry sip every 300 ms.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SipWsOptionsWorld, wsOptionsRequest } from '../helpers/sip-ws-options-world';
import { pollUntil } from '../helpers/wait-for';

const HEADER_MS = 1000;
const IDLE_MS = 20_000;
const PING_EVERY_MS = 150;

describe('ferry sip: a fragmented WebSocket message must complete within the header timeout, pings between fragments or not', { timeout: 60_000 }, () => {
  const world = new SipWsOptionsWorld();

  before(async () => {
    await world.start({ headerTimeoutMs: HEADER_MS, idleTimeoutMs: IDLE_MS, wsPingIntervalMs: 300 });
  });
  after(() => world.close());

  const sendAsync = (ws: WebSocket, data: string, fin: boolean): Promise<void> =>
    new Promise((resolve, reject) => ws.send(data, { fin }, (err) => (err ? reject(err) : resolve())));

  test('one fragment, then only pings: closed at the header timeout, not the idle one; a fragmented message completed in time is served; pongs alone keep a connection', async () => {
    const idleBefore = world.engine.connections.stats().closed.idle;
    const headerBefore = world.engine.connections.stats().closed['header-timeout'];

    // positive control first: three fragments with pings between, completed well within the deadline
    const good = await world.open();
    const msg = wsOptionsRequest();
    const third = Math.floor(msg.length / 3);
    await sendAsync(good.ws, msg.slice(0, third), false);
    good.ws.ping();
    await sendAsync(good.ws, msg.slice(third, 2 * third), false);
    good.ws.ping();
    await sendAsync(good.ws, msg.slice(2 * third), true);
    await pollUntil(() => good.got.some((m) => /^SIP\/2\.0 200 /.test(m)), { timeoutMs: 5_000, what: 'the fragmented OPTIONS answered 200' });

    // the hostile one: the first fragment of a message that never completes, then a ping every 150 ms
    const held = await world.open();
    const openedAt = Date.now();
    await sendAsync(held.ws, msg.slice(0, third), false);
    world.timers.push(setInterval(() => { if (held.ws.readyState === WebSocket.OPEN) held.ws.ping(); }, PING_EVERY_MS));

    await pollUntil(() => held.closedAt, { timeoutMs: IDLE_MS / 2, what: 'the connection with a half-sent message closed' });
    const lived = held.closedAt! - openedAt;
    assert.ok(lived >= HEADER_MS - 200 && lived < IDLE_MS / 2, `closed ${lived} ms after its first fragment (header timeout ${HEADER_MS} ms, idle ${IDLE_MS} ms)`);
    assert.equal(world.engine.connections.stats().closed['header-timeout'] - headerBefore, 1, 'closed for its incomplete message');
    assert.equal(world.engine.connections.stats().closed.idle - idleBefore, 0, 'not as idle');

    // the good connection (it answers ferry sip's pings, sends nothing else) outlived that deadline several times over
    assert.equal(good.closedAt, undefined, 'the connection whose message completed is open');
    assert.equal(good.ws.readyState, WebSocket.OPEN);
  });
});
