/**
 * RFC 4475 torture messages against a running ferry sip (real UDP, TCP and WebSocket listeners) with a
 * real drachtio-srf app connected. Every message of the corpus (test/fixtures/rfc4475) is sent as the
 * RFC wrote it, over each transport, and the outcome the RFC asks for is asserted: which requests the
 * app sees, which final responses the sender gets (400/416/420/501/505, or the app's answer), and which
 * are dropped or close the connection. Each "nothing came" is bounded by a positive control: an OPTIONS
 * sent after the message, on the same socket when it is still usable, is answered and seen by the app.
 * At the end of each transport the engine's transactions and pending requests are back to zero.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import { SipStreamFramer } from '../../src/sip/message/sip-stream-framer';
import type { SipResponse } from '../../src/sip/message/sip-message';
import { connectSrf, type ConnectedSrf } from '../helpers/srf-app';
import { pollUntil } from '../helpers/wait-for';
import { RFC4475_CORPUS, loadRfc4475, type Rfc4475Transport } from '../fixtures/rfc4475/corpus';

interface RawClient {
  responses: SipResponse[];
  closed: boolean;
  localPort: number;
  send(data: Buffer): void;
  close(): void;
}

function onMessage(client: RawClient, data: Buffer): void {
  try {
    // lenient: a 400 repeats the request's headers, which may be the malformed ones
    const m = parseSipMessage(data, true, true);
    if (m.kind !== 'response') return;
    // a UDP retransmission of a final response (sent before our ACK arrived) is the same answer
    const id = `${m.status}|${m.headers.get('Call-ID')}|${m.headers.get('CSeq')}`;
    if (!client.responses.some((r) => `${r.status}|${r.headers.get('Call-ID')}|${r.headers.get('CSeq')}` === id)) client.responses.push(m);
  } catch {
    // ferry sip sends well-formed responses; anything else would show up as a missing response
  }
}

async function openClient(transport: Rfc4475Transport, engine: RunningSipEngine): Promise<RawClient> {
  if (transport === 'udp') {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const c: RawClient = {
      responses: [], closed: false, localPort: socket.address().port,
      send: (d) => socket.send(d, engine.ports.sip, '127.0.0.1'),
      close: () => socket.close(),
    };
    socket.on('message', (d) => onMessage(c, d));
    return c;
  }
  if (transport === 'tcp') {
    const socket = net.connect(engine.ports.sip, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const framer = new SipStreamFramer();
    const c: RawClient = {
      responses: [], closed: false, localPort: socket.localPort!,
      send: (d) => socket.write(d),
      close: () => socket.destroy(),
    };
    socket.on('data', (d) => framer.push(d).messages.forEach((m) => onMessage(c, m)));
    socket.on('close', () => { c.closed = true; });
    socket.on('error', () => {});
    return c;
  }
  const ws = new WebSocket(`ws://127.0.0.1:${engine.ports.ws}`, 'sip');
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  const c: RawClient = {
    responses: [], closed: false, localPort: 0,
    send: (d) => ws.send(d, { binary: true }),
    close: () => ws.terminate(),
  };
  ws.on('message', (d: Buffer) => onMessage(c, Buffer.from(d)));
  ws.on('close', () => { c.closed = true; });
  ws.on('error', () => {});
  return c;
}

function controlOptions(transport: Rfc4475Transport, client: RawClient, callId: string): Buffer {
  const via = `SIP/2.0/${transport.toUpperCase()} 127.0.0.1:${client.localPort || 9};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`;
  return Buffer.from([`OPTIONS sip:control@127.0.0.1 SIP/2.0`, `Via: ${via}`, 'Max-Forwards: 70',
    `From: <sip:probe@ferry.test>;tag=${randomBytes(4).toString('hex')}`, 'To: <sip:control@127.0.0.1>', `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n'));
}

/** The ACK for a non-2xx final answer to an INVITE (RFC 3261 §17.1.1.3), so the server transaction ends. */
function ackFor(requestUri: string, res: SipResponse): Buffer {
  const seq = (res.headers.get('CSeq') ?? '1').trim().split(/\s+/)[0];
  return Buffer.from([`ACK ${requestUri} SIP/2.0`, `Via: ${res.headers.getAll('Via')[0]}`, 'Max-Forwards: 70',
    `From: ${res.headers.get('From')}`, `To: ${res.headers.get('To')}`, `Call-ID: ${res.headers.get('Call-ID')}`,
    `CSeq: ${seq} ACK`, 'Content-Length: 0', '', ''].join('\r\n'));
}

/** Call-IDs a fixture carries (a message may hold several, dblreq two requests; insuf none). */
function callIdsOf(data: Buffer): Set<string> {
  const ids = new Set<string>();
  for (const m of data.toString('latin1').matchAll(/^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]+)/gim)) ids.add(m[1].trim());
  return ids;
}

/** Top Via branch + sent-by + method of a fixture that parses: ferry sip's server transaction key. */
function transactionKeyOf(data: Buffer): string | undefined {
  try {
    const m = parseSipMessage(data, true);
    if (m.kind !== 'request') return undefined;
    return `${(m.headers.getAll('Via')[0] ?? '').replace(/\s+/g, '')}|${m.method}`;
  } catch {
    return undefined;
  }
}

for (const transport of ['udp', 'tcp', 'ws'] as const) {
  describe(`RFC 4475 torture messages over ${transport.toUpperCase()}`, () => {
    let engine: RunningSipEngine;
    let app: ConnectedSrf;
    const seen: Array<{ method: string; callId: string }> = [];
    const usedKeys = new Set<string>();

    before(async () => {
      // short RFC 3261 timers: a UDP transaction lingers 64*T1 = 1.3 s after its answer, not 32 s
      // no restart hold: a request for an unknown dialog is answered 481 at once, not after 10 s
      engine = await startSipEngine({ host: '127.0.0.1', timers: { t1: 20, t2: 160, t4: 100 }, restartHoldMs: 0 });
      app = await connectSrf({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' }, (srf) => {
        const s = srf as any;
        const record = (req: any): void => { seen.push({ method: req.method, callId: req.get('Call-ID') }); };
        s.invite((req: any, res: any) => { record(req); res.send(486); });
        s.options((req: any, res: any) => { record(req); res.send(200); });
        s.register((req: any, res: any) => { record(req); res.send(200); });
        s.message((req: any, res: any) => { record(req); res.send(200); });
      });
    }, { timeout: 20_000 });

    after(async () => {
      app?.close();
      await engine?.close();
    }, { timeout: 10_000 });

    for (const msg of RFC4475_CORPUS) {
      const expected = msg.outcome[transport];
      const what = `${msg.section} ${msg.name} (${msg.title}): ${expected.app.length ? `app sees ${expected.app.join('+')}` : 'app sees nothing'}, `
        + `${expected.responses.length ? `answered ${expected.responses.join('+')}` : 'no answer'}${expected.closed ? ', connection closed' : ''}`;
      test(what, { timeout: 15_000 }, async () => {
        const data = loadRfc4475(msg.name);
        const ids = callIdsOf(data);
        const key = transactionKeyOf(data);
        if (key && usedKeys.has(key)) {
          // an earlier corpus message used the same branch and sent-by: let its transaction end first
          await pollUntil(() => engine.engine.stats().serverTransactions === 0, { timeoutMs: 8000, what: 'earlier server transactions to end' });
        }
        if (key) usedKeys.add(key);

        const client = await openClient(transport, engine);
        const control = client;
        let controlClient: RawClient | undefined;
        try {
          client.send(data);
          const ofFixture = (): SipResponse[] => client.responses.filter((r) => r.status >= 200
            && (ids.size === 0 ? !(r.headers.get('Call-ID') ?? '').startsWith('control-') : ids.has(r.headers.get('Call-ID') ?? '')));
          if (expected.responses.length) {
            await pollUntil(() => ofFixture().length >= expected.responses.length, { timeoutMs: 5000, what: `${expected.responses.length} final response(s) to ${msg.name}` });
          }
          if (expected.closed) await pollUntil(() => client.closed, { timeoutMs: 5000, what: `the server to close the connection after ${msg.name}` });
          const requestUri = data.toString('latin1').split('\r\n')[0].split(' ')[1] ?? '';
          for (const r of ofFixture()) {
            if (r.status >= 300 && /INVITE/i.test(r.headers.get('CSeq') ?? '') && !client.closed) client.send(ackFor(requestUri, r));
          }

          // positive control: an OPTIONS after the message is answered and reaches the app
          const controlId = `control-${msg.name}-${randomBytes(4).toString('hex')}`;
          const stuck = client.closed || (transport === 'tcp' && expected.responses.length === 0 && msg.name === 'clerr');
          controlClient = stuck ? await openClient(transport, engine) : control;
          controlClient.send(controlOptions(transport, controlClient, controlId));
          await pollUntil(() => controlClient!.responses.some((r) => r.headers.get('Call-ID') === controlId && r.status === 200),
            { timeoutMs: 5000, what: `the control OPTIONS after ${msg.name} to be answered 200` });
          await pollUntil(() => seen.some((s) => s.callId === controlId), { timeoutMs: 5000, what: 'the app to see the control OPTIONS' });

          const appSaw = seen.filter((s) => ids.has(s.callId)).map((s) => s.method);
          assert.deepEqual(appSaw, expected.app, `what the app saw of ${msg.name}`);
          assert.deepEqual(ofFixture().map((r) => r.status), expected.responses, `final responses to ${msg.name}`);
          for (const [name, value] of Object.entries(expected.headers ?? {})) {
            assert.equal(ofFixture()[0]?.headers.get(name), value, `${name} of the answer to ${msg.name}`);
          }
          if (transport !== 'udp' && !expected.closed && !stuck) assert.equal(client.closed, false, 'the connection stays open');
        } finally {
          client.close();
          if (controlClient && controlClient !== client) controlClient.close();
        }
      });
    }

    test('every transaction and pending request of the corpus ends (engine counts back to zero)', { timeout: 15_000 }, async () => {
      const zero = () => {
        const s = engine.engine.stats();
        return s.serverTransactions === 0 && s.pending === 0 && s.dialogs === 0 && s.clientTransactions === 0;
      };
      await pollUntil(zero, { timeoutMs: 10_000, what: `engine counts back to zero (${JSON.stringify(engine.engine.stats())})` });
      assert.ok(seen.length >= RFC4475_CORPUS.length, 'the app saw the corpus requests and the controls');
    });
  });
}

/**
 * The valid response of 3.1.1.12 sent as the answer to a real request: the app sends an OPTIONS through
 * ferry sip to a UDP peer, which answers with unreason's status line, reason phrase (UTF-8), Contact,
 * Content-Type and body, its Via/From/To/Call-ID/CSeq taken from the request so it matches the transaction.
 */
describe('RFC 4475 3.1.1.12 unreason answering a request an app sent (UDP)', () => {
  let engine: RunningSipEngine;
  let app: ConnectedSrf;
  let peer: dgram.Socket;

  before(async () => {
    engine = await startSipEngine({ host: '127.0.0.1', timers: { t1: 20, t2: 160, t4: 100 }, restartHoldMs: 0 });
    app = await connectSrf({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' });
    peer = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => peer.bind(0, '127.0.0.1', resolve));
  }, { timeout: 20_000 });

  after(async () => {
    peer?.close();
    app?.close();
    await engine?.close();
  }, { timeout: 10_000 });

  test('the app gets the 200 with its reason phrase and body intact; the transaction ends', { timeout: 15_000 }, async () => {
    const fixture = loadRfc4475('unreason').toString('latin1');
    const headEnd = fixture.indexOf('\r\n\r\n');
    const [statusLine, ...lines] = fixture.slice(0, headEnd).split('\r\n');
    const kept = lines.filter((l) => !/^(via|v|from|f|to|t|call-id|i|cseq)\s*:/i.test(l));
    let requests = 0;
    peer.on('message', (d, rinfo) => {
      const req = parseSipMessage(d, true);
      if (req.kind !== 'request') return;
      requests++;
      const matching = [...req.headers.getAll('Via').map((v) => `Via: ${v}`), `From: ${req.headers.get('From')}`,
        `To: ${req.headers.get('To')};tag=2229`, `Call-ID: ${req.headers.get('Call-ID')}`, `CSeq: ${req.headers.get('CSeq')}`];
      const answer = [statusLine, ...matching, ...kept].join('\r\n') + fixture.slice(headEnd);
      peer.send(Buffer.from(answer, 'latin1'), rinfo.port, rinfo.address);
    });
    const res = await new Promise<any>((resolve, reject) => {
      (app.srf as any).request(`sip:peer@127.0.0.1:${peer.address().port}`, { method: 'OPTIONS' }, (err: Error | null, req: any) => {
        if (err) reject(err);
        else req.on('response', (r: any) => resolve(r));
      });
    });
    assert.equal(res.status, 200);
    assert.equal(res.reason, '= 2**3 * 5**2 но сто девяносто девять - простое');
    assert.equal(res.get('Content-Type'), 'application/sdp');
    assert.equal(Buffer.byteLength(res.body), 154);
    assert.ok(requests >= 1);
    await pollUntil(() => engine.engine.stats().clientTransactions === 0, { timeoutMs: 5000, what: 'the client transaction to end' });
  });
});
