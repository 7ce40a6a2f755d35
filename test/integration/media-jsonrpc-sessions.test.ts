import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { fetchStats } from '../helpers/media-kurento';
import { RawRpc } from '../helpers/media-raw-rpc';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { pollUntil } from '../helpers/wait-for';

/** The Kurento JSON-RPC protocol as kurento-client speaks it: sessionId rules, reconnect, errors, transactions, ownership. */
describe('media: JSON-RPC protocol and sessions', () => {
  let server: RunningMediaServer;
  const open: RawRpc[] = [];
  const peers: RtpTestPeer[] = [];
  const rpc = async () => {
    const r = await RawRpc.open(server.url);
    open.push(r);
    return r;
  };

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1' } });
  });
  after(async () => {
    await Promise.all(open.map((r) => r.close()));
    peers.forEach((p) => p.close());
    await server.close();
  });

  test('sessionId is assigned on first use, echoed in every result, injected into later pings', { timeout: 120_000 }, async () => {
    const r = await rpc();
    const pong = await r.ok('ping', { interval: 5000 });
    assert.deepEqual(pong, { value: 'pong' });
    const d = await r.ok('describe', { object: 'manager_ServerManager' });
    assert.equal(d.type, 'ServerManager');
    assert.equal(d.qualifiedType, 'kurento.ServerManager');
    assert.deepEqual(d.hierarchy, ['kurento.MediaObject']);
    assert.match(String(d.sessionId), /^[0-9a-f-]{36}$/);
    const sid = d.sessionId;
    assert.deepEqual(await r.ok('ping'), { value: 'pong', sessionId: sid });
    const p = await r.ok('create', { type: 'kurento.MediaPipeline', properties: {} });
    assert.equal(p.sessionId, sid);
    const e = await r.ok('create', { type: 'RtpEndpoint', constructorParams: { mediaPipeline: p.value }, properties: {} });
    const desc = await r.ok('describe', { object: e.value });
    assert.deepEqual(desc.hierarchy, ['kurento.BaseRtpEndpoint', 'kurento.SdpEndpoint', 'kurento.SessionEndpoint', 'kurento.Endpoint', 'kurento.MediaElement', 'kurento.MediaObject']);
    assert.equal((await r.ok('invoke', { object: e.value, operation: 'getMediaState' })).value, 'DISCONNECTED');
    assert.equal((await r.ok('invoke', { object: e.value, operation: 'getMediaPipeline' })).value, p.value);
    assert.deepEqual((await r.ok('invoke', { object: p.value, operation: 'getChildren' })).value, [e.value]);
    const rel = await r.ok('release', { object: p.value });
    assert.deepEqual(rel, { sessionId: sid });
  });

  test('Kurento error codes: unknown object 40101, unknown operation 40008, unknown type 40108, unsupported event 40106, unknown method -32601, bad SDP 40201', { timeout: 120_000 }, async () => {
    const r = await rpc();
    const p = await r.ok('create', { type: 'MediaPipeline' });
    const e = await r.ok('create', { type: 'RtpEndpoint', constructorParams: { mediaPipeline: p.value } });
    assert.equal((await r.request('invoke', { object: 'nope_kurento.MediaPipeline', operation: 'getChildren' })).error?.code, 40101);
    const unknownOp = await r.request('invoke', { object: e.value, operation: 'fly' });
    assert.equal(unknownOp.error?.code, 40008);
    assert.equal(unknownOp.error?.data?.type, 'MALFORMED_TRANSACTION');
    assert.equal(unknownOp.result, undefined);
    assert.equal((await r.request('create', { type: 'ZBarFilter', constructorParams: { mediaPipeline: p.value } })).error?.code, 40108);
    assert.equal((await r.request('subscribe', { object: e.value, type: 'IceCandidateFound' })).error?.code, 40106);
    assert.equal((await r.request('frobnicate', {})).error?.code, -32601);
    const bad = await r.request('invoke', { object: e.value, operation: 'processOffer', operationParams: { offer: '' } });
    assert.equal(bad.error?.code, 40201);
    assert.equal(bad.error?.data?.type, 'SDP_PARSE_ERROR');
    assert.equal((await r.request('invoke', { object: e.value, operation: 'processAnswer', operationParams: { answer: 'v=0' } })).error?.code, 40209);
    assert.equal((await r.request('create', { type: 'RtpEndpoint', constructorParams: {} })).error?.code, 40001);
    // every event the 7.x IDL lists for RtpEndpoint is accepted, even ones ferry never fires
    for (const type of ['Error', 'ElementConnected', 'ElementDisconnected', 'MediaFlowInStateChanged', 'MediaFlowOutStateChanged', 'MediaTranscodingStateChanged', 'MediaSessionStarted', 'MediaSessionTerminated', 'ConnectionStateChanged', 'MediaStateChanged', 'OnKeySoftLimit']) {
      const sub = await r.ok('subscribe', { object: e.value, type });
      assert.match(String(sub.value), /^[0-9a-f-]{36}$/);
    }
    // release of unknown ids succeeds, twice
    await r.ok('release', { object: 'f00_kurento.MediaPipeline' });
    await r.ok('release', { object: p.value });
    await r.ok('release', { object: p.value });
  });

  test('reconnect: connect(sessionId) rebinds, subscriptions follow the session to the new socket; unknown session -> 40007', { timeout: 120_000 }, async () => {
    const r1 = await rpc();
    const p = await r1.ok('create', { type: 'MediaPipeline' });
    const sid = p.sessionId!;
    const e = await r1.ok('create', { type: 'RtpEndpoint', constructorParams: { mediaPipeline: p.value } });
    await r1.ok('subscribe', { object: e.value, type: 'MediaSessionStarted' });
    await r1.close();
    const r2 = await rpc();
    const c = await r2.ok('connect', { sessionId: sid });
    assert.equal(c.sessionId, sid);
    assert.match(String(c.serverId), /^[0-9a-f-]{36}$/);
    const peer = await RtpTestPeer.open();
    peers.push(peer);
    await r2.ok('invoke', { object: e.value, operation: 'processOffer', operationParams: { offer: peer.sdp() } });
    await peer.waitFor(() => r2.notifications.length > 0, 3000, 'event on the new socket');
    const ev = r2.notifications[0] as { value: { type: string; object: string; data: Record<string, unknown> } };
    assert.equal(ev.value.type, 'MediaSessionStarted');
    assert.equal(ev.value.object, e.value);
    assert.equal(ev.value.data.source, e.value);
    assert.match(String(ev.value.data.timestampMillis), /^\d{13}$/);
    assert.deepEqual(ev.value.data.tags, []);
    const bad = await r2.request('connect', { sessionId: 'not-a-session' });
    assert.equal(bad.error?.code, 40007);
    assert.equal((await r2.request('keepAlive', { sessionId: 'not-a-session' })).error?.code, 40007);
    assert.equal((await r2.ok('keepAlive', { sessionId: sid })).sessionId, sid);
    await r2.ok('release', { object: p.value });
  });

  test('a second connection using the same sessionId takes it over: events go to it only', { timeout: 120_000 }, async () => {
    const r1 = await rpc();
    const r2 = await rpc();
    const p = await r1.ok('create', { type: 'MediaPipeline' });
    const e = await r1.ok('create', { type: 'RtpEndpoint', constructorParams: { mediaPipeline: p.value } });
    await r1.ok('subscribe', { object: e.value, type: 'MediaSessionStarted' });
    await r2.ok('ping', { sessionId: p.sessionId });
    await r2.ok('describe', { object: p.value, sessionId: p.sessionId });
    const peer = await RtpTestPeer.open();
    peers.push(peer);
    await r2.ok('invoke', { object: e.value, operation: 'processOffer', operationParams: { offer: peer.sdp() } });
    await peer.waitFor(() => r2.notifications.length > 0, 3000, 'event on the second connection');
    assert.equal(r1.notifications.length, 0);
    await r2.ok('release', { object: p.value });
  });

  test('transaction with newref: substitution; bad inner ids -> 40008', { timeout: 120_000 }, async () => {
    const r = await rpc();
    const p = await r.ok('create', { type: 'MediaPipeline' });
    const t = await r.ok('transaction', {
      operations: [
        { jsonrpc: '2.0', id: 0, method: 'create', params: { type: 'RtpEndpoint', constructorParams: { mediaPipeline: p.value }, properties: {} } },
        { jsonrpc: '2.0', id: 1, method: 'create', params: { type: 'RtpEndpoint', constructorParams: { mediaPipeline: p.value }, properties: {} } },
        { jsonrpc: '2.0', id: 2, method: 'invoke', params: { object: 'newref:0', operation: 'connect', operationParams: { sink: 'newref:1' } } },
        { jsonrpc: '2.0', id: 3, method: 'invoke', params: { object: 'newref:0', operation: 'getSinkConnections' } },
      ],
    });
    const results = t.value as { id: number; result?: { value: unknown; sessionId: string } }[];
    assert.equal(results.length, 4);
    assert.ok(String(results[0]!.result!.value).startsWith(`${p.value}/`));
    assert.equal(results[2]!.result!.value, null);
    const conns = results[3]!.result!.value as { sink: string; type: string }[];
    assert.deepEqual(conns.map((c) => c.type).sort(), ['AUDIO', 'DATA', 'VIDEO']);
    assert.ok(conns.every((c) => c.sink === results[1]!.result!.value));
    const bad = await r.request('transaction', { operations: [{ jsonrpc: '2.0', id: 5, method: 'ping' }] });
    assert.equal(bad.error?.code, 40008);
    // execution stops at the first failing operation
    const partial = await r.ok('transaction', {
      operations: [
        { jsonrpc: '2.0', id: 0, method: 'invoke', params: { object: 'missing', operation: 'x' } },
        { jsonrpc: '2.0', id: 1, method: 'create', params: { type: 'MediaPipeline' } },
      ],
    });
    const pr = partial.value as { error?: { code: number } }[];
    assert.equal(pr.length, 1);
    assert.equal(pr[0]!.error?.code, 40101);
    await r.ok('release', { object: p.value });
  });

  test('ownership: ref adopts, unref by every owner releases; closeSession releases what only it owned; the session expires', { timeout: 120_000 }, async () => {
    const r1 = await rpc();
    const r2 = await rpc();
    const p = await r1.ok('create', { type: 'MediaPipeline' });
    const s2 = (await r2.ok('describe', { object: 'manager_ServerManager' })).sessionId!;
    await r2.ok('ref', { object: p.value, sessionId: s2 });
    await r1.ok('unref', { object: p.value });
    const mid = await fetchStats(server.port);
    assert.ok(mid.pipelinesDetail.some((x) => x.id === p.value), 'still owned by session 2');
    await r2.ok('unref', { object: p.value });
    const after = await fetchStats(server.port);
    assert.ok(!after.pipelinesDetail.some((x) => x.id === p.value), 'released when nobody owns it');

    const r3 = await rpc();
    const q = await r3.ok('create', { type: 'MediaPipeline' });
    await r3.ok('closeSession');
    const st = await fetchStats(server.port);
    assert.ok(!st.pipelinesDetail.some((x) => x.id === q.value));
    assert.ok(!st.sessionsDetail.some((x) => x.id === q.sessionId), 'session forgotten');
  });

  test('per-connection FIFO: requests pipelined without waiting run in order (getLocalSessionDescriptor after processOffer)', { timeout: 120_000 }, async () => {
    const r = await rpc();
    const p = await r.ok('create', { type: 'MediaPipeline' });
    const e = await r.ok('create', { type: 'RtpEndpoint', constructorParams: { mediaPipeline: p.value } });
    const peer = await RtpTestPeer.open();
    peers.push(peer);
    const [offer, local, state] = await Promise.all([
      r.request('invoke', { object: e.value, operation: 'processOffer', operationParams: { offer: peer.sdp() } }),
      r.request('invoke', { object: e.value, operation: 'getLocalSessionDescriptor' }),
      r.request('invoke', { object: e.value, operation: 'getRemoteSessionDescriptor' }),
    ]);
    assert.equal(offer.error, undefined);
    assert.equal(local.result?.value, offer.result?.value);
    assert.equal(state.result?.value, peer.sdp());
    await r.ok('release', { object: p.value });
  });

  test('ServerManager ObjectCreated/ObjectDestroyed events; getSessions; a session listening to the manager does not expire', { timeout: 120_000 }, async () => {
    const r = await rpc();
    const sub = await r.ok('subscribe', { object: 'manager_ServerManager', type: 'ObjectCreated' });
    await r.ok('subscribe', { object: 'manager_ServerManager', type: 'ObjectDestroyed' });
    const p = await r.ok('create', { type: 'MediaPipeline' });
    assert.equal(p.sessionId, sub.sessionId);
    const sessions = (await r.ok('invoke', { object: 'manager_ServerManager', operation: 'getSessions' })).value as string[];
    assert.ok(sessions.includes(String(sub.sessionId)));
    await r.ok('release', { object: p.value });
    const peer = await RtpTestPeer.open();
    peers.push(peer);
    await peer.waitFor(() => r.notifications.length >= 2, 3000, 'manager events');
    const types = r.notifications.map((n) => (n as { value: { type: string; data: Record<string, unknown> } }).value);
    assert.equal(types[0]!.type, 'ObjectCreated');
    assert.equal(types[0]!.data.object, p.value);
    assert.equal(types[1]!.type, 'ObjectDestroyed');
    assert.equal(types[1]!.data.objectId, p.value);
    assert.deepEqual(await r.ok('ping'), { value: 'pong', sessionId: sub.sessionId }, 'still bound');
  });

  test('a control peer that stops answering WebSocket pings (half-open TCP) is dropped: its session is orphaned, a healthy one is not', { timeout: 120_000 }, async () => {
    const pinging = await startMediaServer({ config: { port: 0, host: '127.0.0.1', wsPingMs: 150 } });
    try {
      const silent = await RawRpc.open(pinging.url, { autoPong: false });
      const healthy = await RawRpc.open(pinging.url);
      open.push(silent, healthy);
      const p1 = await silent.ok('create', { type: 'MediaPipeline' });
      const p2 = await healthy.ok('create', { type: 'MediaPipeline' });
      // the silent peer's drop is the event; the healthy peer answered the same pings meanwhile
      const st = await pollUntil(async () => { const s = await fetchStats(pinging.port); return s.pipelinesDetail.find((p) => p.id === p1.value)?.orphaned ? s : undefined; },
        { timeoutMs: 5_000, what: 'the silent peer dropped (its pipeline orphaned)' });
      assert.equal(st.pipelinesDetail.find((p) => p.id === p2.value)?.orphaned, false, 'healthy peer kept');
    } finally {
      await pinging.close();
    }
  });

  test('the ?query on the path is tolerated; another path is refused; a released session leaves /stats at zero', { timeout: 120_000 }, async () => {
    const r = await RawRpc.open(`${server.url}?access_token=abc`);
    open.push(r);
    assert.deepEqual(await r.ok('ping'), { value: 'pong' });
    await assert.rejects(
      new Promise((resolve, reject) => {
        const ws = new WebSocket(server.url.replace('/kurento', '/other'));
        ws.once('open', resolve);
        ws.once('error', reject);
      }),
    );
    await Promise.all(open.map((x) => x.close()));
    await pollUntil(async () => { const st = await fetchStats(server.port); return [st.pipelines, st.elements, st.sessions, st.boundPorts].every((n) => n === 0); },
      { timeoutMs: 5_000, what: 'pipelines, elements, sessions and bound ports back to 0' });
  });
});
