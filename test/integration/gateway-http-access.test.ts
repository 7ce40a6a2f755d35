import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { setUpApiToken } from '../../src/cli/api-token-file';
import { createLogger } from '../../src/common/logger';
import { HttpAccess, loadHttpAccessConfig, type HttpAccessConfig } from '../../src/gateway/http/http-access';
import { HttpServer } from '../../src/gateway/http/http-server';
import { GatewayMetrics } from '../../src/gateway/http/metrics';
import { NetNamespace } from '../helpers/netns';
import { httpAsk, type HttpAnswer } from '../helpers/http-ask';
import { loadWebphoneSettings } from '../../src/gateway/http/webphone-settings';
import type { CallRecord } from '../../src/gateway/state/call-record';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';

/**
 * Who may read the gateway's HTTP side, on real sockets: the bearer token on /api/*, the Host
 * check against DNS rebinding (421), /metrics for host-local scrapers, a generated token refused
 * from other machines, the list view without SDPs or ids, and the page's security headers.
 * "Another machine" is a network namespace joined to this one by a veth pair (test/helpers/netns.ts):
 * its requests come from its own address over a real link. A request from this host to its own
 * non-loopback address counts as this host (the server sees its own address as the client's).
 */
const TOKEN = 'access-test-token-4f1d9c2b7e';

function ownLanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

/** A GET from inside the namespace (another machine) to this host's end of the veth pair: the status code. */
async function getFromOtherMachine(ns: NetNamespace, port: number, p: string, token?: string): Promise<number> {
  const script = `
    const headers = ${JSON.stringify(token ? { Authorization: `Bearer ${token}` } : {})};
    const req = require('node:http').request({ host: ${JSON.stringify(ns.hostAddress)}, port: ${port}, path: ${JSON.stringify(p)}, headers }, (res) => {
      res.resume();
      res.on('end', () => process.stdout.write(String(res.statusCode)));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { process.stderr.write(String(e)); process.exit(1); });
    req.end();`;
  return Number((await ns.exec(process.execPath, ['-e', script])).trim());
}

function get(port: number, p: string, o: { token?: string; host?: string; via?: string } = {}): Promise<HttpAnswer> {
  const headers: Record<string, string> = {};
  if (o.token) headers.Authorization = `Bearer ${o.token}`;
  if (o.host) headers.Host = o.host;
  return httpAsk(port, p, { headers, host: o.via });
}

const record: CallRecord = {
  id: '33333333-live', state: 'answered', createdAt: Date.now(),
  caller: { uri: 'sip:alice@d', kind: 'webrtc', party: 'alice', localSdp: 'v=0\r\nc=IN IP4 192.0.2.1\r\n', remoteSdp: 'v=0\r\na=ice-pwd:secretpwd\r\n', dialog: { dialogId: 'd1', callId: 'call-id-1@x', localTag: 'a', remoteTag: 'b', localCseq: 1, remoteTarget: 'sip:x', routeSet: [], localUri: 'sip:a', remoteUri: 'sip:b', role: 'uas' } },
  callee: { uri: 'sip:5550100@pbx', kind: 'rtp', party: 'pbx', localSdp: 'v=0\r\n', remoteSdp: 'v=0\r\n' },
  media: { pipelineId: 'pipeline-secret-id', callerEndpointId: 'ep-1', calleeEndpointId: 'ep-2', mediaUrl: 'ws://127.0.0.1:8888/kurento' },
  owner: 'gw-t', timeline: [{ t: 1, event: 'invite' }, { t: 2, event: 'media-created', detail: 'pipeline-secret-id' }],
};

async function serve(access: HttpAccessConfig, host = '0.0.0.0'): Promise<{ server: HttpServer; port: number }> {
  const store = new MemoryStateStore();
  await store.putCall(record);
  const metrics = new GatewayMetrics();
  const server = new HttpServer(
    {
      listCalls: () => store.listCalls(),
      getCall: (id) => store.getCall(id),
      metrics: async () => metrics.render({ activeCalls: 1, ownedCalls: 1, registrations: 0, instanceId: 'gw-t' }),
      webphoneConfig: () => ({ wsUrl: 'wss://phone.example.org:8089', domain: 'd', iceServers: [{ urls: 'stun:stun.example.org:3478' }] }),
    },
    createLogger('test.http'),
    new HttpAccess(access),
  );
  return { server, port: await server.listen(host, 0) };
}

describe('gateway HTTP access: API token, Host names, /metrics, list view, page headers', { timeout: 30_000 }, () => {
  let other: NetNamespace;
  let withToken: { server: HttpServer; port: number };
  let generated: { server: HttpServer; port: number };
  let noToken: { server: HttpServer; port: number };

  before(async () => {
    const base = loadHttpAccessConfig({ FERRY_API_TOKEN: TOKEN, FERRY_PUBLIC_HOST: 'phone.example.org' }, '0.0.0.0', []);
    withToken = await serve(base);
    generated = await serve({ ...base, apiLoopbackOnly: true });
    noToken = await serve({ ...base, apiToken: undefined });
    other = await NetNamespace.create();
  });
  after(async () => {
    await Promise.all([withToken?.server.close(), generated?.server.close(), noToken?.server.close(), other?.destroy()]);
  });

  test('/api/calls: no token 401 (with a Bearer challenge), a wrong token 401, the right token 200', async () => {
    const none = await get(withToken.port, '/api/calls');
    assert.equal(none.status, 401);
    assert.match(String(none.headers['www-authenticate']), /^Bearer realm="ferry"$/);
    assert.doesNotMatch(none.body, /alice|pbx/);
    assert.equal((await get(withToken.port, '/api/calls', { token: 'access-test-token-4f1d9c2b7f' })).status, 401, 'one character off');
    assert.equal((await get(withToken.port, '/api/calls', { token: 'x' })).status, 401, 'short');
    assert.equal((await get(withToken.port, `/api/calls/${record.id}`)).status, 401, 'one call too');
    const ok = await get(withToken.port, '/api/calls', { token: TOKEN });
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.body) as { calls: unknown[] }).calls.length, 1);
  });

  test('no token configured: the API answers 401 to everyone, the page still works', async () => {
    assert.equal((await get(noToken.port, '/api/calls', { token: TOKEN })).status, 401);
    assert.equal((await get(noToken.port, '/')).status, 200);
    assert.equal((await get(noToken.port, '/api/webphone-config')).status, 200, 'the page\'s own config needs no token');
  });

  test('DNS rebinding: a Host that is not ours gets 421 even with the token; our names and IP literals pass', async () => {
    for (const p of ['/api/calls', '/', '/metrics', '/api/webphone-config']) {
      const r = await get(withToken.port, p, { token: TOKEN, host: `rebind.attacker.example:${withToken.port}` });
      assert.equal(r.status, 421, `${p} with a foreign Host`);
      assert.doesNotMatch(r.body, /alice/);
    }
    for (const host of [`localhost:${withToken.port}`, `127.0.0.1:${withToken.port}`, `[::1]:${withToken.port}`, 'phone.example.org', 'PHONE.example.org.', `192.0.2.99:${withToken.port}`]) {
      assert.equal((await get(withToken.port, '/api/calls', { token: TOKEN, host })).status, 200, `Host ${host}`);
    }
    const only = loadHttpAccessConfig({ FERRY_API_TOKEN: TOKEN, FERRY_HTTP_ALLOWED_HOSTS: 'gw.example.net, [::1]' }, '127.0.0.1', []);
    assert.deepEqual(only.allowedHosts, ['gw.example.net', '::1'], 'FERRY_HTTP_ALLOWED_HOSTS replaces the defaults');
  });

  test('/metrics: a scraper on this host needs no token; another machine needs it; FERRY_METRICS_AUTH=token asks everyone', async () => {
    assert.equal((await get(withToken.port, '/metrics')).status, 200);
    const strict = await serve({ ...loadHttpAccessConfig({ FERRY_API_TOKEN: TOKEN, FERRY_METRICS_AUTH: 'token' }, '0.0.0.0', []) });
    try {
      assert.equal((await get(strict.port, '/metrics')).status, 401);
      assert.equal((await get(strict.port, '/metrics', { token: TOKEN })).status, 200);
    } finally {
      await strict.server.close();
    }
    assert.equal(await getFromOtherMachine(other, withToken.port, '/metrics'), 401, `from ${other.phoneAddress} without a token`);
    assert.equal(await getFromOtherMachine(other, withToken.port, '/metrics', TOKEN), 200, `from ${other.phoneAddress} with it`);
    // this host through its own non-loopback addresses: the veth end and the LAN address, if any
    for (const via of [other.hostAddress, ownLanAddress()].filter((a): a is string => a !== undefined)) {
      assert.equal((await get(withToken.port, '/metrics', { via })).status, 200, `this host through ${via}`);
    }
  });

  test('a generated token works from this host only (also through its own LAN address): another machine gets 403 even with it', async () => {
    assert.equal((await get(generated.port, '/api/calls', { token: TOKEN })).status, 200, 'positive control: loopback with the token');
    for (const via of [other.hostAddress, ownLanAddress()].filter((a): a is string => a !== undefined)) {
      assert.equal((await get(generated.port, '/api/calls', { via, token: TOKEN })).status, 200, `this host through ${via}`);
    }
    assert.equal(await getFromOtherMachine(other, withToken.port, '/api/calls', TOKEN), 200, 'positive control: a configured token works from elsewhere');
    assert.equal(await getFromOtherMachine(other, generated.port, '/api/calls', TOKEN), 403);
  });

  test('the list view has no SDP, dialog ids or media ids; /api/calls/:id has the whole record', async () => {
    const list = await get(withToken.port, '/api/calls', { token: TOKEN });
    assert.doesNotMatch(list.body, /v=0|ice-pwd|call-id-1|pipeline-secret-id|ep-1|localSdp|dialog/);
    const [c] = (JSON.parse(list.body) as { calls: CallRecord[] }).calls;
    assert.equal(c!.caller.party, 'alice', 'who and what kind stay');
    assert.deepEqual(c!.timeline.map((e) => e.event), ['invite', 'media-created']);
    const one = await get(withToken.port, `/api/calls/${record.id}`, { token: TOKEN });
    assert.match(one.body, /pipeline-secret-id/, 'positive control: the full record');
  });

  test('security headers: CSP fitting the page (its WebSocket only, never framed), nosniff, no referrer, no-store on the API', async () => {
    const page = await get(withToken.port, '/');
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /connect-src 'self' wss:\/\/phone\.example\.org:8089(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.doesNotMatch(page.body, /<style|<script>|\sstyle=|\son[a-z]+=/, 'nothing inline the CSP would have to allow');
    assert.equal(page.headers['x-frame-options'], 'DENY');
    for (const p of ['/', '/api/calls', '/webphone.js']) {
      const r = await get(withToken.port, p, { token: TOKEN });
      assert.equal(r.headers['x-content-type-options'], 'nosniff', p);
      assert.equal(r.headers['referrer-policy'], 'no-referrer', p);
    }
    assert.equal((await get(withToken.port, '/api/calls', { token: TOKEN })).headers['cache-control'], 'no-store');
    assert.deepEqual(JSON.parse((await get(withToken.port, '/api/webphone-config')).body).iceServers, [{ urls: 'stun:stun.example.org:3478' }]);
  });

  test('configuration: short tokens, token files, ICE servers and the HTTPS link are checked', () => {
    const problems: string[] = [];
    loadHttpAccessConfig({ FERRY_API_TOKEN: 'short' }, '127.0.0.1', problems);
    assert.match(problems.join('\n'), /at least 16 characters/);
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-token-'));
    try {
      writeFileSync(path.join(dir, 't'), `${TOKEN}\n`);
      assert.equal(loadHttpAccessConfig({ FERRY_API_TOKEN_FILE: path.join(dir, 't') }, '127.0.0.1', []).apiToken, TOKEN);
      const p2: string[] = [];
      loadHttpAccessConfig({ FERRY_API_TOKEN_FILE: path.join(dir, 'missing') }, '127.0.0.1', p2);
      assert.match(p2.join('\n'), /FERRY_API_TOKEN_FILE: cannot read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const p3: string[] = [];
    const w = loadWebphoneSettings({ FERRY_WEBPHONE_ICE_SERVERS: '[{"urls":["turn:turn.example.org:3478?transport=udp"],"username":"u","credential":"c"}]', FERRY_HTTPS_URL: 'https://phone.example.org:3443/' }, p3);
    assert.deepEqual(p3, []);
    assert.equal(w.iceServers.length, 1);
    assert.equal(w.httpsUrl, 'https://phone.example.org:3443/');
    const p4: string[] = [];
    loadWebphoneSettings({ FERRY_WEBPHONE_ICE_SERVERS: '[{"urls":"http://x"}]', FERRY_HTTPS_URL: 'http://x', FERRY_WEBPHONE_ICE_TRANSPORT_POLICY: 'some' }, p4);
    assert.equal(p4.length, 3, p4.join('\n'));
  });

  test('ferry start\'s generated token: a 0600 file in the data directory, reused, loopback-only, never the token in the gateway env', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-data-'));
    try {
      const first = setUpApiToken({ FERRY_DATA_DIR: dir });
      assert.equal(first.file, path.join(dir, 'api-token'));
      assert.equal(statSync(first.file!).mode & 0o777, 0o600);
      const token = readFileSync(first.file!, 'utf8').trim();
      assert.ok(token.length >= 32);
      assert.deepEqual(first.gatewayEnv, { FERRY_API_TOKEN_FILE: first.file, FERRY_API_LOOPBACK_ONLY: '1' });
      assert.equal(readFileSync(setUpApiToken({ FERRY_DATA_DIR: dir }).file!, 'utf8').trim(), token, 'the next start reuses it');
      assert.deepEqual(setUpApiToken({ FERRY_DATA_DIR: dir, FERRY_API_TOKEN: TOKEN }), { gatewayEnv: {} }, 'a configured token wins');
      const cfg = loadHttpAccessConfig({ ...first.gatewayEnv }, '127.0.0.1', []);
      assert.equal(cfg.apiToken, token);
      assert.equal(cfg.apiLoopbackOnly, true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
