import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startStack, TEST_API_TOKEN, type Stack } from '../helpers/stack';
import { pollUntil } from '../helpers/wait-for';

/**
 * An API request whose body does not arrive within 5 s is answered `408` (docs/security.md, "HTTP API and
 * webphone") and closed: the client learns why. Before, the connection was destroyed before the answer
 * could be written, so a slow client got a bare close. Real processes; raw TCP.
 */
interface Exchange {
  text: string;
  closedAt?: number;
}

function post(port: number, declared: number, sent: string): { ex: Exchange; socket: net.Socket; started: number } {
  const socket = net.connect({ host: '127.0.0.1', port });
  const ex: Exchange = { text: '' };
  socket.on('data', (d) => (ex.text += d.toString('utf8')));
  socket.on('close', () => (ex.closedAt = Date.now()));
  socket.on('error', () => {});
  socket.write(`POST /api/calls HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${TEST_API_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n${sent}`);
  return { ex, socket, started: Date.now() };
}

describe('gateway API: a body that does not arrive in time', { timeout: 60_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });

  test('is answered 408 with a message, and the connection closed, about 5 s after the headers; a complete body is answered at once', async () => {
    // positive control: the same request with its whole body gets an answer of the API's own (not 408)
    const whole = post(stack.httpPort, 2, '{}');
    await pollUntil(() => /^HTTP\/1\.1 \d{3}/.test(whole.ex.text), { timeoutMs: 5000, what: 'the answer to a complete body' });
    assert.doesNotMatch(whole.ex.text, /^HTTP\/1\.1 408/);
    whole.socket.destroy();

    const slow = post(stack.httpPort, 100, '{"a":');
    await pollUntil(() => slow.ex.closedAt, { timeoutMs: 15_000, what: 'the slow request closed' });
    assert.match(slow.ex.text, /^HTTP\/1\.1 408 /, `answer: ${JSON.stringify(slow.ex.text.slice(0, 80))}`);
    assert.match(slow.ex.text, /did not arrive within 5000 ms/);
    const after = slow.ex.closedAt! - slow.started;
    assert.ok(after >= 4500, `closed ${after} ms after the headers, not before the 5 s`);
  });
});
