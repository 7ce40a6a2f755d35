/**
 * A peer that pipelines requests over one connection and never reads the answers (docs/security.md
 * "Connections"): ferry sip stops reading that connection once about maxUnsentBytes of answers wait to be
 * sent, so the answers it holds for the peer stay bounded, instead of one answer per request forever.
 * A running ferry sip (real TCP / WebSocket and control sockets) with a drachtio-srf app that answers
 * OPTIONS with an 8 kB header (each answer far larger than its request): while the peer does not read,
 * the app sees only part of the requests; once the peer reads, every request is answered (the positive
 * control: nothing is lost, the connection was only slowed down). Without backpressure the app sees all
 * of them at once and ferry sip holds every answer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { maxUnsentBytes } from '../../src/sip/transport/stream-connection';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../src/sip/message/sip-stream-framer';
import { sipToken } from '../helpers/sip-udp-phone';
import { connectBareSrf, routesApplied } from '../helpers/srf-app';
import { pollUntil } from '../helpers/wait-for';


const REQUESTS = 6000;
const PAD = 'x'.repeat(8000);

function options(transport: 'TCP' | 'WS', port: number, i: number): string {
  return [`OPTIONS sip:service@127.0.0.1:${port}${transport === 'WS' ? ';transport=ws' : ''} SIP/2.0`,
    `Via: SIP/2.0/${transport} 127.0.0.1:${port};branch=z9hG4bK${sipToken()}${i}`, 'Max-Forwards: 70',
    `From: <sip:reader@127.0.0.1>;tag=${sipToken()}`, 'To: <sip:service@127.0.0.1>', `Call-ID: unread-${i}-${sipToken()}`,
    'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
}

/**
 * Sends the requests in batches of 100, each once the previous one has reached the app, until the app stops
 * taking them (a batch not taken within `stallMs`: ferry sip stopped reading) or all are sent; then sends
 * the rest at once. Returns how many the app had taken when it stopped (all of them if it never did).
 */
async function sendUntilStalled(send: (i: number) => void, taken: () => number, stallMs: number): Promise<number> {
  let sent = 0;
  while (sent < REQUESTS) {
    for (const end = Math.min(REQUESTS, sent + 100); sent < end; sent++) send(sent);
    try {
      await pollUntil(() => taken() >= sent, { timeoutMs: stallMs, what: `the app to take ${sent} requests` });
    } catch {
      const atStall = taken();
      while (sent < REQUESTS) send(sent++);
      return atStall;
    }
  }
  return taken();
}

describe('ferry sip: a peer that does not read its answers is not read either', { timeout: 90_000 }, () => {
  let engine: RunningSipEngine;
  let srf: any;
  let seen = 0;

  before(async () => {
    // the header deadline well past the test's pauses: what is measured is the backpressure, not the close
    // and no per-source rate of new requests: 6000 OPTIONS from one address would pass it (tested in sip-request-rate.test.ts)
    engine = await startSipEngine({ host: '127.0.0.1', connectionLimits: { headerTimeoutMs: 60_000, idleTimeoutMs: 60_000 }, requestRate: { perSecond: 0 } });
    srf = await connectBareSrf(engine.ports.control);
    srf.options((_req: any, res: any) => {
      seen++;
      res.send(200, { headers: { 'X-Pad': PAD } });
    });
    await routesApplied(srf);
  });
  after(async () => {
    try { srf.disconnect(); } catch { /* gone */ }
    await engine.close();
  });

  test('TCP: OPTIONS pipelined while the answers are not read: ferry sip stops taking them; reading them lets every one through', { timeout: 40_000 }, async () => {
    seen = 0;
    const sock = net.connect(engine.ports.sip, '127.0.0.1');
    sock.pause(); // the peer reads nothing
    sock.on('error', () => {});
    await new Promise<void>((r) => sock.once('connect', () => r()));
    try {
      const whileUnread = await sendUntilStalled((i) => sock.write(options('TCP', engine.ports.sip, i)), () => seen, 1000);
      // 8 kB answers: the kernel's socket buffers (a few MB on loopback) plus maxUnsentBytes hold well under half of them
      assert.ok(whileUnread > 0 && whileUnread < REQUESTS / 2, `${whileUnread} of ${REQUESTS} requests taken while the answers were not read (at most about ${maxUnsentBytes(DEFAULT_MAX_MESSAGE_BYTES)} bytes queued beyond the kernel's)`);
      // positive control: the peer reads, and every request is answered
      let answers = 0;
      let tail = '';
      sock.on('data', (d: Buffer) => {
        const text = tail + d.toString('latin1');
        answers += text.split('SIP/2.0 200').length - 1;
        tail = text.slice(-12);
      });
      sock.resume();
      await pollUntil(() => answers >= REQUESTS, { timeoutMs: 20_000, what: `all ${REQUESTS} answers read (have ${answers})` });
      assert.equal(seen, REQUESTS);
    } finally {
      sock.destroy();
    }
  });

  test('WebSocket: the same over SIP over WebSocket', { timeout: 40_000 }, async () => {
    seen = 0;
    const ws = new WebSocket(`ws://127.0.0.1:${engine.ports.ws}`, 'sip');
    ws.on('error', () => {});
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    let answers = 0;
    ws.on('message', () => answers++);
    ws.pause(); // stops reading the socket
    try {
      const whileUnread = await sendUntilStalled((i) => ws.send(options('WS', engine.ports.ws, i)), () => seen, 1000);
      assert.ok(whileUnread > 0 && whileUnread < REQUESTS / 2, `${whileUnread} of ${REQUESTS} requests taken while the answers were not read`);
      assert.ok(answers === 0, 'the peer read nothing yet');
      ws.resume();
      await pollUntil(() => answers >= REQUESTS, { timeoutMs: 20_000, what: `all ${REQUESTS} answers read (have ${answers})` });
      assert.equal(seen, REQUESTS);
    } finally {
      ws.terminate();
    }
  });
});
