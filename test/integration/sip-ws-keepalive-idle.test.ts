/**
 * A WebSocket connection that carries no SIP message is closed at the idle timeout (docs/security.md
 * "Connections": CRLF keep-alives and WebSocket pings are not SIP messages). Over WebSocket a CRLF keep-alive
 * used to count as a message, so a stranger could hold a connection slot for ever by sending `\r\n\r\n` every
 * few seconds, never sending SIP. Now the keep-alive is still answered (`\r\n`) but does not reset the idle
 * clock. Positive control: a connection sending an OPTIONS as often is kept past the idle timeout.
 *
 * ferry sip in process (real WS sockets, the `ws` client offering the `sip` subprotocol), idle timeout 1.5 s.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SipWsOptionsWorld, wsOptionsRequest } from '../helpers/sip-ws-options-world';
import { pollUntil } from '../helpers/wait-for';

const IDLE_MS = 1500;
const EVERY_MS = 200;

describe('ferry sip: CRLF keep-alives over WebSocket do not keep an unused connection past the idle timeout', { timeout: 60_000 }, () => {
  const world = new SipWsOptionsWorld();

  before(async () => {
    // an app answers the OPTIONS at once: over WebSocket their transactions end with the answer, so nothing but
    // the messages themselves keeps that connection open
    await world.start({ idleTimeoutMs: IDLE_MS });
  });
  after(() => world.close());

  test('a connection sending only keep-alives is answered and closed at the idle timeout; one sending OPTIONS as often is kept', async () => {
    const keepAlive = await world.open();
    const options = await world.open();
    const openedAt = Date.now();
    world.timers.push(setInterval(() => keepAlive.ws.readyState === WebSocket.OPEN && keepAlive.ws.send('\r\n\r\n'), EVERY_MS));
    world.timers.push(setInterval(() => {
      if (options.ws.readyState !== WebSocket.OPEN) return;
      options.ws.send(wsOptionsRequest());
    }, EVERY_MS));

    await pollUntil(() => keepAlive.got.includes('\r\n'), { timeoutMs: 5_000, what: 'a keep-alive answered' });
    await pollUntil(() => keepAlive.closedAt, { timeoutMs: IDLE_MS + 5_000, what: 'the keep-alive-only connection closed' });
    const lived = keepAlive.closedAt! - openedAt;
    assert.ok(lived >= IDLE_MS - 200, `closed after ${lived} ms (idle timeout ${IDLE_MS} ms)`);
    assert.ok(world.engine.connections.stats().closed.idle >= 1, 'closed as idle');
    // the positive control: the connection that sends SIP as often is still open, and stays past another idle period
    assert.equal(options.closedAt, undefined, 'the connection sending OPTIONS is open');
    assert.ok(options.got.some((m) => /^SIP\/2\.0 200 /.test(m)), 'its OPTIONS are answered');
    const until = Date.now() + IDLE_MS + 500;
    await pollUntil(() => Date.now() >= until || options.closedAt !== undefined, { timeoutMs: IDLE_MS + 5_000, what: 'another idle period' });
    assert.equal(options.closedAt, undefined, 'still open after another idle period');
  });
});
