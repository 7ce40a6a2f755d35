import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { connectSrf, type ConnectedSrf } from '../helpers/srf-app';
import { encodeControlFrame } from '../../src/sip/control/control-frame-decoder';
import { pollUntil, realTimePause } from '../helpers/wait-for';

/**
 * The drachtio control port of `bin/ferry sip` before authentication: a peer that has not sent the
 * right secret may make it buffer at most a small frame, for at most the authentication deadline, on a
 * bounded number of connections; an authenticated drachtio-srf app is held to none of that.
 */

const MB = 1024 * 1024;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** A raw TCP client of the control port; `closedAt` is set when the server closes it. */
interface RawClient {
  socket: net.Socket;
  openedAt: number;
  closedAt: number | undefined;
  received: string;
}

function rawConnect(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const c: RawClient = { socket, openedAt: 0, closedAt: undefined, received: '' };
    socket.on('data', (d) => { c.received += d.toString('latin1'); });
    socket.on('error', () => { /* a reset by the server is expected; close follows */ });
    socket.on('close', () => { c.closedAt ??= Date.now(); });
    socket.once('connect', () => { c.openedAt = Date.now(); resolve(c); });
    socket.once('error', reject);
  });
}

async function waitUntil(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  await pollUntil(pred, { timeoutMs, what, stepMs: 10 });
}

/** A ping answered on an authenticated raw connection: the connection is alive and served. */
async function pingAnswered(c: RawClient, rid: string, timeoutMs = 5000): Promise<void> {
  c.socket.write(encodeControlFrame(`${rid}|ping`));
  await waitUntil(() => c.received.includes(`|response|${rid}|OK`), timeoutMs, `answer to ping ${rid}`);
}

/** Waits for a log line of the engine (its JSON log goes to stderr) matching `re`. */
async function logged(e: SipEngineProcess, re: RegExp): Promise<void> {
  await waitUntil(() => re.test(e.stderr() + e.stdout()), 3000, `a log line matching ${re}`);
}

async function authenticate(c: RawClient, secret: string): Promise<void> {
  c.socket.write(encodeControlFrame(`auth-1|authenticate|${secret}|`));
  await waitUntil(() => c.received.includes('|response|auth-1|OK'), 5000, 'authenticate OK');
}

describe('ferry sip control port: limits before authentication', { timeout: 120_000 }, () => {
  const engines: SipEngineProcess[] = [];
  const sockets: net.Socket[] = [];
  const apps: ConnectedSrf[] = [];
  after(async () => {
    apps.forEach((a) => a.close());
    sockets.forEach((s) => s.destroy());
    await Promise.all(engines.map((e) => e.stop()));
  });

  async function engine(env: Record<string, string>): Promise<SipEngineProcess> {
    const e = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info', ...env });
    engines.push(e);
    return e;
  }

  test('control: 20 unauthenticated connections sending 1 MB frames are closed at once and ferry sip RSS grows by < 8 MB', async () => {
    const e = await engine({ FERRY_SIP_CONTROL_MAX_UNAUTHENTICATED: '32' });
    const pid = e.child.pid!;
    // positive control first: a real drachtio-srf app connects (and warms the accept path)
    const app = await connectSrf({ host: '127.0.0.1', port: e.ports.control, secret: 'cymru' });
    apps.push(app);
    await realTimePause(300); // a memory measurement: let start-up garbage settle before the RSS baseline
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => { try { peak = Math.max(peak, rssBytes(pid)); } catch { /* exited */ } }, 10);
    // each announces a frame of 1 MB + 1 and sends 1 MB of it: an unauthenticated sender that never finishes
    const clients = await Promise.all(Array.from({ length: 20 }, () => rawConnect(e.ports.control)));
    clients.forEach((c) => sockets.push(c.socket));
    const startedAt = Date.now();
    for (const c of clients) {
      c.socket.write(`${MB + 1}#`);
      c.socket.write(Buffer.alloc(MB, 0x61));
    }
    try {
      await waitUntil(() => clients.every((c) => c.closedAt !== undefined), 5000, 'every oversized unauthenticated connection closed');
      await realTimePause(200); // a memory measurement: the RSS sampler keeps watching for a late peak
    } finally {
      clearInterval(sampler);
    }
    const closedWithinMs = Math.max(...clients.map((c) => c.closedAt! - startedAt));
    const growth = peak - before;
    console.log(`# 20 x 1 MB unauthenticated frames: all closed within ${closedWithinMs} ms; RSS ${(before / MB).toFixed(1)} MB -> peak ${(peak / MB).toFixed(1)} MB (+${(growth / MB).toFixed(1)} MB)`);
    assert.ok(growth < 8 * MB, `RSS grew by ${(growth / MB).toFixed(1)} MB`);
    assert.ok(e.running(), 'ferry sip still runs');
    await logged(e, /"error":"frame of 1048577 bytes is above the limit of 4096".*"message":"bad control frame, closing app connection"/);
    // 20 closures from one source address make one log line (a flood of strangers stays a trickle in the log)
    const badFrameLines = e.stderr().split('\n').filter((l) => l.includes('"message":"bad control frame, closing app connection"'));
    assert.equal(badFrameLines.length, 1, badFrameLines.join('\n'));
    // the authenticated app's connection was not touched: it still sends requests and gets answers
    const answered = await new Promise<number>((resolve, reject) => {
      (app.srf as any).request(`sip:probe@${app.sipAddress('udp')}`, { method: 'OPTIONS' }, (err: Error | null, req: any) => {
        if (err) return reject(err);
        req.on('response', (res: any) => resolve(res.status));
      });
    }).catch((err: Error) => `failed: ${err.message}`);
    assert.notEqual(typeof answered, 'string', `the drachtio-srf app could still send a request: ${String(answered)}`);
  });

  test('control: an idle unauthenticated connection is closed at the authentication timeout; an authenticated one stays', async () => {
    const timeoutMs = 1500;
    const e = await engine({ FERRY_SIP_CONTROL_AUTH_TIMEOUT_MS: String(timeoutMs) });
    const idle = await rawConnect(e.ports.control);
    const authed = await rawConnect(e.ports.control);
    sockets.push(idle.socket, authed.socket);
    await authenticate(authed, 'cymru');
    await waitUntil(() => idle.closedAt !== undefined, timeoutMs + 10_000, 'the idle connection closed');
    const lived = idle.closedAt! - idle.openedAt;
    console.log(`# idle unauthenticated connection closed after ${lived} ms (timeout ${timeoutMs} ms)`);
    assert.ok(lived >= timeoutMs - 100, `closed after ${lived} ms, before the timeout`);
    // generous for a loaded machine; without the deadline it is never closed
    assert.ok(lived < timeoutMs + 6000, `closed after ${lived} ms`);
    // positive control: the authenticated connection (opened at the same time) outlives the timeout and is served
    assert.equal(authed.closedAt, undefined, 'the authenticated connection is still open');
    await pingAnswered(authed, 'ping-after-timeout');
    await logged(e, /app did not authenticate in time/);
  });

  test('control: the unauthenticated cap refuses extra connections, the connection cap too; a drachtio-srf app connects once there is room', async () => {
    const e = await engine({ FERRY_SIP_CONTROL_MAX_UNAUTHENTICATED: '3', FERRY_SIP_CONTROL_MAX_CONNECTIONS: '5', FERRY_SIP_CONTROL_AUTH_TIMEOUT_MS: '60000' });
    const port = e.ports.control;
    const held = [await rawConnect(port), await rawConnect(port), await rawConnect(port)];
    held.forEach((c) => sockets.push(c.socket));
    const extra = await rawConnect(port);
    sockets.push(extra.socket);
    await waitUntil(() => extra.closedAt !== undefined, 3000, 'the 4th unauthenticated connection refused');
    assert.ok(extra.closedAt! - extra.openedAt < 2000, 'refused at once, not at a timeout');
    // the three held ones were not closed (positive control: the 4th was, in the same time)
    assert.ok(held.every((c) => c.closedAt === undefined), 'the connections under the cap stay open');
    await logged(e, /control connection refused.*unauthenticated connection cap reached \(3\)/);

    // a slot frees: a real drachtio-srf app connects and authenticates; it no longer counts as unauthenticated
    held[0]!.socket.destroy();
    await waitUntil(() => held[0]!.closedAt !== undefined, 2000, 'held[0] closed');
    await new Promise((r) => setTimeout(r, 100)); // the server sees the FIN
    const app = await connectSrf({ host: '127.0.0.1', port, secret: 'cymru' });
    apps.push(app);
    const again = await rawConnect(port); // the 3rd unauthenticated one again: accepted
    sockets.push(again.socket);
    await authenticate(again, 'cymru');
    // 4 open now (app, 2 held, again authenticated): one more unauthenticated fits under both caps
    const fifth = await rawConnect(port);
    sockets.push(fifth.socket);
    const sixth = await rawConnect(port);
    sockets.push(sixth.socket);
    await waitUntil(() => sixth.closedAt !== undefined, 3000, 'the 6th connection refused by the connection cap');
    // the positive control of "the 5th stays": the server accepted (and judged) the 5th before the 6th, whose refusal arrived
    assert.equal(fifth.closedAt, undefined, 'the 5th connection is under the connection cap');
    await logged(e, /control connection refused.*connection cap reached \(5\)/);
    await pingAnswered(again, 'ping-at-cap');
  });

  test('control: right after authenticate the frame limit is the authenticated one, even for a large frame in the same write; before it, the same frame closes the connection', async () => {
    const e = await engine({});
    const big = encodeControlFrame(`big-ping|ping|${'x'.repeat(100_000)}`);
    // authenticate and a 100 kB frame in one write: the second frame is judged after authentication
    const ok = await rawConnect(e.ports.control);
    sockets.push(ok.socket);
    ok.socket.write(Buffer.concat([encodeControlFrame('auth-1|authenticate|cymru|'), big]));
    await waitUntil(() => ok.received.includes('|response|big-ping|OK'), 5000, 'the 100 kB ping answered after authenticate');
    assert.equal(ok.closedAt, undefined);
    // positive control: the same frame first, before authenticating, closes the connection
    const early = await rawConnect(e.ports.control);
    sockets.push(early.socket);
    early.socket.write(Buffer.concat([big, encodeControlFrame('auth-1|authenticate|cymru|')]));
    await waitUntil(() => early.closedAt !== undefined, 3000, 'the unauthenticated 100 kB frame closed the connection');
    assert.ok(!early.received.includes('|response|auth-1|OK'), 'the authenticate behind it was never handled');
  });
});
