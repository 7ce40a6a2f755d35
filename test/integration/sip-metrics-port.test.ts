/**
 * ferry sip's metrics port (docs/sip-engine.md "Metrics"): `bin/ferry sip` with FERRY_SIP_METRICS_PORT, scraped
 * over real sockets. Every scrape is parsed whole by a strict Prometheus text-format parser (below): each
 * sample line `name{labels} value`, each name with its HELP and TYPE before its samples. A fresh engine shows
 * zeros; a connection over the per-source cap and new requests over the per-source rate (both set low) move
 * their counters by exactly what the test's peers saw, with a scrape before as the positive control; a 505,
 * a garbage datagram, a held INVITE, app connections and a stateless answer with the transaction table full
 * show too. The port listens on loopback only (another
 * address of this host is refused), answers GET /metrics only, and applies the HTTP limits (Host, header size,
 * header deadline, body, connection cap). Unset, no metrics port is opened (positive control: the same port
 * set). A bad setting refuses to start with one line naming the variable.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { SourcePeer, requestIds } from '../helpers/sip-source-peer';
import { connectBareSrf } from '../helpers/srf-app';
import { freePort } from '../helpers/free-port';
import { pollUntil } from '../helpers/wait-for';
import { expectFerrySipRefusesToStart } from '../helpers/ferry-sip-refusal';


/** One parsed scrape: `name{k="v",...}` (labels as written, in order) -> value; and each family's type. */
interface Scrape {
  samples: Map<string, number>;
  types: Map<string, 'counter' | 'gauge'>;
}

/**
 * A strict parser of Prometheus text format 0.0.4 as ferry writes it: every line is `# HELP name text`,
 * `# TYPE name counter|gauge` or a sample `name{label="value",...} number` (labels optional); a family's HELP
 * and TYPE come once each, before its samples, and its samples are together; counters end in `_total` and
 * are not negative, gauges do not end in `_total`; no series twice; the text ends with a newline.
 */
function parseExposition(text: string): Scrape {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const samples = new Map<string, number>();
  const types = new Map<string, 'counter' | 'gauge'>();
  const helped = new Set<string>();
  const finished = new Set<string>();
  let current: string | undefined;
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const lines = text.slice(0, -1).split('\n');
  for (const [i, line] of lines.entries()) {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${NAME}) (\\S.*)$`).exec(line))) {
      const name = m[1]!;
      assert.ok(!helped.has(name) && !types.has(name), `${where}: HELP once, before TYPE`);
      if (current !== undefined) finished.add(current);
      helped.add(name);
      current = name;
      continue;
    }
    if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge)$`).exec(line))) {
      const name = m[1]!;
      assert.equal(current, name, `${where}: TYPE right after its HELP`);
      assert.ok(!types.has(name), `${where}: TYPE once`);
      const type = m[2] as 'counter' | 'gauge';
      assert.equal(name.endsWith('_total'), type === 'counter', `${where}: counters end in _total, gauges do not`);
      types.set(name, type);
      continue;
    }
    m = new RegExp(`^(${NAME})(\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*")*)?\\})? (-?[0-9]+(?:\\.[0-9]+)?(?:e[+-]?[0-9]+)?)$`).exec(line);
    assert.ok(m, `${where}: not a HELP, TYPE or sample line`);
    const name = m[1]!;
    assert.ok(helped.has(name) && types.has(name), `${where}: sample before its HELP and TYPE`);
    assert.equal(current, name, `${where}: a family's samples are together, after its HELP and TYPE`);
    assert.ok(!finished.has(name), `${where}: family reopened`);
    const key = `${name}${m[2] ?? ''}`;
    assert.ok(!samples.has(key), `${where}: series twice`);
    const value = Number(m[3]);
    assert.ok(Number.isFinite(value), `${where}: value`);
    if (types.get(name) === 'counter') assert.ok(value >= 0, `${where}: a counter is not negative`);
    samples.set(key, value);
  }
  for (const name of types.keys()) assert.ok([...samples.keys()].some((k) => k === name || k.startsWith(`${name}{`)), `${name} has no sample`);
  return { samples, types };
}

/** One HTTP request on its own connection (closed after the answer). */
function ask(port: number, o: { path?: string; method?: string; headers?: Record<string, string>; host?: string } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: o.host ?? '127.0.0.1', port, path: o.path ?? '/metrics', method: o.method ?? 'GET', headers: o.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** What a raw TCP connection got: the bytes, whether and when the server closed it, or the connect error. */
interface RawAnswer {
  text: string;
  error?: string;
  tookMs: number;
}

/** Connects from `localAddress` to `host:port`, writes `send` (if any) and waits for the close (or `timeoutMs`). */
function raw(port: number, send: string | undefined, o: { host?: string; localAddress?: string; timeoutMs?: number } = {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ port, host: o.host ?? '127.0.0.1', ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    let text = '';
    let error: string | undefined;
    const timer = setTimeout(() => socket.destroy(), o.timeoutMs ?? 15_000);
    socket.once('connect', () => send !== undefined && socket.write(send));
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, ...(error ? { error } : {}), tookMs: Date.now() - started });
    });
  });
}

/** An open TCP connection (to the SIP port, or the metrics port), held until the test destroys it. */
function holdOpen(port: number, localAddress = '127.0.0.1'): Promise<{ socket: net.Socket; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let closed = false;
    socket.on('error', () => {});
    socket.on('close', () => (closed = true));
    socket.once('connect', () => resolve({ socket, closed: () => closed }));
    socket.once('error', reject);
  });
}

function readyInfo(e: SipEngineProcess): Record<string, number> {
  const m = /ferry sip ready (\{[^\n]*\})/.exec(e.stdout());
  assert.ok(m, 'ready line');
  return JSON.parse(m[1]!) as Record<string, number>;
}

function metricsPort(e: SipEngineProcess): number {
  const p = readyInfo(e).metrics;
  assert.ok(Number.isInteger(p) && p! > 0, `the ready line names the metrics port: ${e.stdout()}`);
  return p!;
}

async function scrape(port: number): Promise<Map<string, number>> {
  const res = await ask(port);
  assert.equal(res.status, 200, res.body);
  assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(res.body).samples;
}

/** a non-loopback IPv4 address of this host, if it has one */
function externalIPv4(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

const REFUSED = 'ferry_sip_connections_refused_total';
const DROPPED = 'ferry_sip_requests_rate_dropped_total';

describe('ferry sip metrics port (FERRY_SIP_METRICS_PORT)', { timeout: 180_000 }, () => {
  const engines: SipEngineProcess[] = [];
  const cleanups: Array<() => unknown> = [];
  after(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await Promise.all(engines.map((e) => e.stop()));
  });
  async function engine(env: Record<string, string>): Promise<SipEngineProcess> {
    const e = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info', FERRY_LOG_FORMAT: 'json', ...env });
    engines.push(e);
    return e;
  }

  // the caps and rates low enough to reach with a handful of sockets and datagrams
  let limited: SipEngineProcess;
  let port = 0;

  test('a fresh engine: the whole scrape parses, every family has HELP and TYPE, every counter and gauge is 0', { timeout: 30_000 }, async () => {
    limited = await engine({ FERRY_SIP_METRICS_PORT: '0', FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE: '2', FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND: '1', FERRY_SIP_REQUEST_BURST: '2' });
    port = metricsPort(limited);
    const res = await ask(port);
    assert.equal(res.status, 200);
    const { samples, types } = parseExposition(res.body);
    for (const family of ['ferry_sip_connections_open', 'ferry_sip_connection_sources', REFUSED, 'ferry_sip_connections_closed_total', DROPPED,
      'ferry_sip_requests_table_full_total', 'ferry_sip_requests_refused_total', 'ferry_sip_malformed_messages_total', 'ferry_sip_server_transactions',
      'ferry_sip_client_transactions', 'ferry_sip_pending_requests', 'ferry_sip_dialogs', 'ferry_sip_registration_bindings', 'ferry_sip_orphaned_dialogs',
      'ferry_sip_held_requests', 'ferry_sip_app_connections', 'ferry_process_faults_total', 'ferry_http_connections_refused_total']) {
      assert.ok(types.has(family), `${family} is there`);
    }
    for (const reason of ['per-source-cap', 'connection-cap', 'handshake-rate']) assert.equal(samples.get(`${REFUSED}{reason="${reason}"}`), 0, reason);
    for (const reason of ['message-too-large', 'bad-framing', 'header-timeout', 'body-timeout', 'handshake-timeout', 'idle', 'no-pong']) {
      assert.equal(samples.get(`ferry_sip_connections_closed_total{reason="${reason}"}`), 0, reason);
    }
    const nonZero = [...samples].filter(([, v]) => v !== 0);
    assert.deepEqual(nonZero, [], 'every sample of a fresh engine is 0');
    assert.ok(samples.size >= 40, `${samples.size} samples`);
  });

  test('a connection over the per-source cap and requests over the per-source rate move their counters by exactly that much', { timeout: 30_000 }, async () => {
    const before = await scrape(port);
    assert.equal(before.get(`${REFUSED}{reason="per-source-cap"}`), 0);
    assert.equal(before.get(DROPPED), 0);

    // 127.0.0.1 holds its cap of 2 SIP connections; the third is closed on accept
    const held = [await holdOpen(limited.ports.sip), await holdOpen(limited.ports.sip)];
    cleanups.push(() => held.forEach((h) => h.socket.destroy()));
    await pollUntil(async () => (await scrape(port)).get('ferry_sip_connections_open') === 2, { timeoutMs: 5000, what: 'two SIP connections open' });
    const third = await raw(limited.ports.sip, undefined, { timeoutMs: 5000 });
    assert.equal(third.text, '', 'the refused connection gets nothing');
    assert.ok(third.tookMs < 5000, 'closed by the server, not by the test');
    let now = await scrape(port);
    assert.equal(now.get(`${REFUSED}{reason="per-source-cap"}`), 1);
    assert.equal(now.get(`${REFUSED}{reason="connection-cap"}`), 0);
    assert.equal(now.get('ferry_sip_connections_open'), 2);
    assert.equal(now.get('ferry_sip_connection_sources'), 1);
    assert.ok(held.every((h) => !h.closed()), 'the held connections stay open');

    // 127.0.0.2 sends 6 new OPTIONS at once: its burst of 2 is answered (503: no app), the rest dropped unanswered
    const peer = await SourcePeer.open('127.0.0.2', limited.ports.sip);
    cleanups.push(() => peer.close());
    const started = Date.now();
    const ids = Array.from({ length: 6 }, () => requestIds());
    for (const i of ids) peer.send(peer.request('OPTIONS', i));
    const callIds = ids.map((i) => i.callId);
    now = await pollUntil(async () => {
      const s = await scrape(port);
      return peer.answeredOf(callIds) + s.get(DROPPED)! === 6 ? s : undefined;
    }, { timeoutMs: 10_000, what: 'each of the 6 OPTIONS answered or counted dropped' });
    const answered = peer.answeredOf(callIds);
    const seconds = Math.ceil((Date.now() - started) / 1000);
    assert.ok(answered >= 2 && answered <= 2 + seconds, `${answered} answered in ${seconds} s`);
    assert.equal(now.get(DROPPED), 6 - answered);
    assert.ok(6 - answered >= 1);
    // each answered OPTIONS is a server transaction still absorbing retransmissions; the refusal count did not move
    assert.equal(now.get('ferry_sip_server_transactions'), answered);
    assert.equal(now.get(`${REFUSED}{reason="per-source-cap"}`), 1);
    assert.equal(now.get('ferry_sip_requests_table_full_total'), 0);
    held.forEach((h) => h.socket.destroy());
    await pollUntil(async () => (await scrape(port)).get('ferry_sip_connections_open') === 0, { timeoutMs: 5000, what: 'the held connections gone' });
  });

  test('a request of another SIP version (505), a garbage datagram, app connections and a held INVITE show in their series', { timeout: 30_000 }, async () => {
    const before = await scrape(port);
    assert.equal(before.get('ferry_sip_requests_refused_total{status="505"}'), 0);
    assert.equal(before.get('ferry_sip_malformed_messages_total{outcome="dropped"}'), 0);
    const peer = await SourcePeer.open('127.0.0.3', limited.ports.sip);
    cleanups.push(() => peer.close());
    const v3 = requestIds();
    peer.send(peer.request('OPTIONS', v3).replace('SIP/2.0\r\n', 'SIP/3.0\r\n'));
    await pollUntil(() => peer.answersTo(v3.callId).find((a) => a.status === 505), { timeoutMs: 5000, what: 'the 505' });
    peer.send('this is not SIP\r\n\r\n');
    await pollUntil(async () => (await scrape(port)).get('ferry_sip_malformed_messages_total{outcome="dropped"}') === 1, { timeoutMs: 5000, what: 'the garbage counted' });
    let now = await scrape(port);
    assert.equal(now.get('ferry_sip_requests_refused_total{status="505"}'), 1);
    assert.equal(now.get('ferry_sip_requests_refused_total{status="400"}'), 0);
    assert.equal(now.get('ferry_sip_malformed_messages_total{outcome="answered"}'), 0);

    // a connection that never authenticates, and a drachtio-srf app that does
    const stranger = await holdOpen(limited.ports.control);
    cleanups.push(() => stranger.socket.destroy());
    const srf = await connectBareSrf(limited.ports.control);
    cleanups.push(() => { try { srf.disconnect(); } catch { /* gone */ } });
    now = await pollUntil(async () => {
      const s = await scrape(port);
      return s.get('ferry_sip_app_connections{state="authenticated"}') === 1 && s.get('ferry_sip_app_connections{state="unauthenticated"}') === 1 ? s : undefined;
    }, { timeoutMs: 5000, what: 'one authenticated and one unauthenticated app connection' });

    // the app routes no INVITE: a new INVITE waits for one (held), then is answered 503
    assert.equal(now.get('ferry_sip_held_requests'), 0);
    const invite = requestIds();
    peer.send(peer.request('INVITE', invite));
    await pollUntil(async () => (await scrape(port)).get('ferry_sip_held_requests') === 1, { timeoutMs: 5000, what: 'the INVITE held' });
    stranger.socket.destroy();
    srf.disconnect();
    await pollUntil(async () => (await scrape(port)).get('ferry_sip_app_connections{state="authenticated"}') === 0, { timeoutMs: 5000, what: 'the app gone' });
  });

  test('with the server transaction table full, a new request answered statelessly moves ferry_sip_requests_table_full_total by one', { timeout: 30_000 }, async () => {
    const e = await engine({ FERRY_SIP_METRICS_PORT: '0', FERRY_SIP_MAX_SERVER_TRANSACTIONS: '1' });
    const p = metricsPort(e);
    const peer = await SourcePeer.open('127.0.0.8', e.ports.sip);
    cleanups.push(() => peer.close());
    // the first OPTIONS takes the one transaction (answered 503 at once: no app; the transaction stays to absorb retransmissions)
    const first = requestIds();
    peer.send(peer.request('OPTIONS', first));
    await pollUntil(() => peer.answersTo(first.callId).length > 0, { timeoutMs: 5000, what: 'the first OPTIONS answered' });
    let now = await scrape(p);
    assert.equal(now.get('ferry_sip_server_transactions'), 1);
    assert.equal(now.get('ferry_sip_requests_table_full_total'), 0, 'positive control: not full yet');
    const second = requestIds();
    peer.send(peer.request('OPTIONS', second));
    await pollUntil(() => peer.answersTo(second.callId).find((a) => a.status === 503), { timeoutMs: 5000, what: 'the second OPTIONS answered 503' });
    now = await scrape(p);
    assert.equal(now.get('ferry_sip_requests_table_full_total'), 1);
    assert.equal(now.get('ferry_sip_server_transactions'), 1, 'the stateless answer opened no transaction');
  });

  test('loopback only: another address of this host is refused, 127.0.0.1 is served', { timeout: 20_000 }, async () => {
    const p = metricsPort(limited);
    // positive control
    assert.equal((await ask(p)).status, 200);
    const other = await raw(p, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { host: '127.0.0.2', timeoutMs: 5000 });
    assert.equal(other.error, 'ECONNREFUSED', '127.0.0.2');
    const external = externalIPv4();
    if (external) {
      const ext = await raw(p, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { host: external, timeoutMs: 5000 });
      assert.equal(ext.error, 'ECONNREFUSED', external);
    }
  });

  test('GET /metrics only; a foreign Host, oversized headers, a body, slow headers and a connection over the cap get the HTTP limits\' answers', { timeout: 60_000 }, async () => {
    const e = await engine({ FERRY_SIP_METRICS_PORT: '0' });
    const p = metricsPort(e);
    assert.equal((await ask(p, { path: '/' })).status, 404);
    assert.equal((await ask(p, { path: '/stats' })).status, 404);
    const post = await ask(p, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET');
    assert.equal((await ask(p, { method: 'DELETE' })).status, 405);
    assert.equal((await ask(p, { headers: { Host: 'metrics.attacker.example' } })).status, 421);
    assert.equal((await ask(p, { headers: { Host: 'localhost:9' } })).status, 200);
    assert.equal((await ask(p, { headers: { 'X-Filler': 'a'.repeat(9000) } })).status, 431);
    const body = await raw(p, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello', { timeoutMs: 5000 });
    assert.match(body.text, /^HTTP\/1\.1 413 /);
    assert.ok(body.tookMs < 5000, 'closed after the 413');
    const chunked = await raw(p, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n', { timeoutMs: 5000 });
    assert.match(chunked.text, /^HTTP\/1\.1 413 /);

    // headers that never end: 408 and closed at the 5 s header deadline (a prompt request meanwhile is served)
    const slow = raw(p, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n', { timeoutMs: 15_000 });
    assert.equal((await ask(p)).status, 200);
    const cut = await slow;
    assert.match(cut.text, /^HTTP\/1\.1 408 /);
    assert.ok(cut.tookMs >= 4900 && cut.tookMs < 8000, `closed after ${cut.tookMs} ms`);

    // 8 connections from 127.0.0.6 (an address that opened none before): a ninth is closed on accept, the 8 stay
    // open, another address is served, and the refusal is counted
    const held: Array<{ socket: net.Socket; closed: () => boolean }> = [];
    cleanups.push(() => held.forEach((h) => h.socket.destroy()));
    for (let i = 0; i < 8; i++) held.push(await holdOpen(p, '127.0.0.6'));
    const ninth = await raw(p, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { localAddress: '127.0.0.6', timeoutMs: 5000 });
    assert.equal(ninth.text, '', 'the ninth connection gets no answer');
    assert.ok(ninth.tookMs < 5000);
    assert.ok(held.every((h) => !h.closed()), 'the eight held connections stay open');
    const fromOther = await raw(p, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', { localAddress: '127.0.0.5', timeoutMs: 5000 });
    assert.match(fromOther.text, /^HTTP\/1\.1 200 /);
    assert.match(fromOther.text, /\nferry_http_connections_refused_total\{reason="per-source-cap"\} 1\n/);
    assert.match(fromOther.text, /\nferry_http_connections_refused_total\{reason="connection-cap"\} 0\n/);
    held.forEach((h) => h.socket.destroy());
  });

  test('unset, no metrics port is opened; set to that same free port, it is', { timeout: 30_000 }, async () => {
    const p = await freePort({ protocols: ['tcp'] });
    const off = await engine({});
    assert.equal(readyInfo(off).metrics, undefined, 'no metrics port in the ready line');
    assert.equal((await raw(p, undefined, { timeoutMs: 5000 })).error, 'ECONNREFUSED');
    assert.doesNotMatch(off.stderr(), /metrics/);
    await off.stop();
    // positive control: the same port, set
    const on = await engine({ FERRY_SIP_METRICS_PORT: String(p) });
    assert.equal(metricsPort(on), p);
    assert.equal((await ask(p)).status, 200);
    assert.match(on.stderr(), /"message":"ferry sip metrics listening"/);
    assert.doesNotMatch(on.stderr(), /reachable from other hosts/);
  });

  test('a bad metrics setting: ferry sip refuses to start with one line naming the variable', { timeout: 60_000 }, async () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ FERRY_SIP_METRICS_PORT: '99999' }, /^ferry sip: refusing to start: environment variable FERRY_SIP_METRICS_PORT="99999" is not a port/],
      [{ FERRY_SIP_METRICS_PORT: 'on' }, /^ferry sip: refusing to start: environment variable FERRY_SIP_METRICS_PORT="on" is not a port/],
      [{ FERRY_SIP_METRICS_PORT: '0', FERRY_SIP_METRICS_HOST: 'metrics.example' }, /^ferry sip: refusing to start: environment variable FERRY_SIP_METRICS_HOST="metrics\.example" is not an IP address/],
      [{ FERRY_SIP_METRICS_HOST: '127.0.0.1' }, /^ferry sip: refusing to start: environment variable FERRY_SIP_METRICS_HOST="127\.0\.0\.1" is set but FERRY_SIP_METRICS_PORT is not/],
    ];
    for (const [env, message] of cases) await expectFerrySipRefusesToStart(env, message);
  });
});

describe('the strict exposition parser itself', { timeout: 10_000 }, () => {
  test('accepts a well-formed family and refuses each way of breaking the format', () => {
    const good = '# HELP a_total A.\n# TYPE a_total counter\na_total{reason="x"} 1\na_total{reason="y"} 0\n# HELP b B.\n# TYPE b gauge\nb 3\n';
    assert.equal(parseExposition(good).samples.get('a_total{reason="x"}'), 1);
    const bad = [
      'b 3\n', // no HELP/TYPE
      '# HELP b B.\nb 3\n', // no TYPE
      '# TYPE b gauge\n# HELP b B.\nb 3\n', // TYPE before HELP
      '# HELP b B.\n# TYPE b counter\nb 3\n', // a counter without _total
      '# HELP b_total B.\n# TYPE b_total gauge\nb_total 3\n', // a gauge with _total
      '# HELP b B.\n# TYPE b gauge\nb{x=1} 3\n', // unquoted label
      '# HELP b B.\n# TYPE b gauge\nb three\n', // not a number
      '# HELP b B.\n# TYPE b gauge\nb 3', // no final newline
      '# HELP b B.\n# TYPE b gauge\nb 3\nb 4\n', // series twice
      '# HELP b B.\n# TYPE b gauge\nb 3\n# HELP c C.\n# TYPE c gauge\nc 1\nb 4\n', // family reopened
    ];
    for (const text of bad) assert.throws(() => parseExposition(text), JSON.stringify(text));
  });
});
