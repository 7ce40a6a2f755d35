import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { fetchStats } from '../helpers/media-kurento';
import { RawRpc } from '../helpers/media-raw-rpc';
import { rawRpcRtpPair } from '../helpers/media-rtp-pair';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { rng } from '../helpers/seeded-random';
import { pollUntil } from '../helpers/wait-for';

const JUNK: unknown[] = [null, true, 0, -1, 1e308, '', 'x', 'newref:9', [], {}, { a: 1 }, '\u0000', 'manager_ServerManager', 'a'.repeat(5000)];

function mutateValue(r: () => number, v: unknown, depth = 0): unknown {
  const pick = <T,>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  if (r() < 0.15 || depth > 4) return pick(JUNK);
  if (Array.isArray(v)) return v.map((x) => mutateValue(r, x, depth + 1));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (r() < 0.1) continue; // drop a key
      out[r() < 0.05 ? `${k}_` : k] = r() < 0.5 ? mutateValue(r, x, depth + 1) : x;
    }
    if (r() < 0.1) out[pick(['object', 'operation', 'sessionId', 'type', 'params', 'operationParams'])] = pick(JUNK);
    return out;
  }
  return r() < 0.5 ? v : pick(JUNK);
}

function mutateText(r: () => number, s: string): string {
  const b = Buffer.from(s);
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const op = r();
    const at = Math.floor(r() * b.length);
    if (op < 0.4) b[at] = Math.floor(r() * 256);
    else if (op < 0.7) return b.subarray(0, at).toString('latin1');
    else b[at] = '{}[]",:'.charCodeAt(Math.floor(r() * 7));
  }
  return b.toString('latin1');
}

/**
 * Bad input never disturbs anyone else: malformed JSON gets -32700, malformed
 * requests -32600/-32602, and thousands of seeded mutations of valid frames on one connection leave
 * an unrelated session's call relaying every packet, the server answering, and /stats consistent.
 */
describe('media: JSON-RPC fuzz', () => {
  let server: RunningMediaServer;
  const rpcs: RawRpc[] = [];
  const peers: RtpTestPeer[] = [];
  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1' } });
  });
  after(async () => {
    await Promise.all(rpcs.map((r) => r.close()));
    peers.forEach((p) => p.close());
    await server.close();
  });

  test('malformed frames get JSON-RPC errors', { timeout: 300_000 }, async () => {
    const r = await RawRpc.open(server.url);
    rpcs.push(r);
    const parse = await r.sendFrame('{"jsonrpc":"2.0","id":1,"method":', null);
    assert.equal(parse.error?.code, -32700);
    assert.equal(parse.id, null);
    assert.equal((await r.sendFrame('{"id":7,"method":"ping"}', 7)).error?.code, -32600);
    assert.equal((await r.sendFrame('{"jsonrpc":"2.0","id":8,"method":5}', 8)).error?.code, -32600);
    assert.equal((await r.sendFrame('{"jsonrpc":"2.0","id":9,"method":"create","params":[1]}', 9)).error?.code, -32602);
    assert.equal((await r.sendFrame('[]', null)).error?.code, -32600);
    assert.equal((await r.sendFrame('"just a string"', null)).error?.code, -32600);
    assert.equal((await r.sendFrame('{"jsonrpc":"2.0","id":10,"method":"invoke","params":{"object":"manager_ServerManager","operation":7}}', 10)).error?.code, 40001);
  });

  test('5000 seeded mutations on one connection; an unrelated call keeps relaying every packet', { timeout: 300_000 }, async () => {
    // the unrelated call, on its own session
    const owner = await RawRpc.open(server.url);
    rpcs.push(owner);
    const { p, pa, pb } = await rawRpcRtpPair(owner, peers);

    const fuzzer = await RawRpc.open(server.url);
    rpcs.push(fuzzer);
    const fp = await fuzzer.ok('create', { type: 'MediaPipeline' });
    const fe = await fuzzer.ok('create', { type: 'RtpEndpoint', constructorParams: { mediaPipeline: fp.value } });
    const samples: Record<string, unknown>[] = [
      { jsonrpc: '2.0', id: 1, method: 'ping', params: { interval: 5000 } },
      { jsonrpc: '2.0', id: 2, method: 'describe', params: { object: 'manager_ServerManager' } },
      { jsonrpc: '2.0', id: 3, method: 'create', params: { type: 'RtpEndpoint', constructorParams: { mediaPipeline: fp.value }, properties: {} } },
      { jsonrpc: '2.0', id: 4, method: 'invoke', params: { object: fe.value, operation: 'processOffer', operationParams: { offer: pa.sdp() } } },
      { jsonrpc: '2.0', id: 5, method: 'invoke', params: { object: fe.value, operation: 'connect', operationParams: { sink: fe.value, mediaType: 'AUDIO' } } },
      { jsonrpc: '2.0', id: 6, method: 'subscribe', params: { object: fe.value, type: 'MediaStateChanged' } },
      { jsonrpc: '2.0', id: 7, method: 'invoke', params: { object: 'manager_ServerManager', operation: 'getPipelines' } },
      { jsonrpc: '2.0', id: 8, method: 'transaction', params: { operations: [{ jsonrpc: '2.0', id: 0, method: 'create', params: { type: 'MediaPipeline' } }, { jsonrpc: '2.0', id: 1, method: 'release', params: { object: 'newref:0' } }] } },
      { jsonrpc: '2.0', id: 9, method: 'unsubscribe', params: { object: fe.value, subscription: 'x' } },
      { jsonrpc: '2.0', id: 10, method: 'invoke', params: { object: fe.value, operation: 'addTag', operationParams: { key: 'k', value: 'v' } } },
      { jsonrpc: '2.0', id: 11, method: 'keepAlive', params: {} },
    ];
    const r = rng(20261125);
    let sentPackets = 0;
    const mediaTimer = setInterval(() => {
      pa.send(0, Buffer.from(`pkt-${sentPackets++}`));
    }, 5);
    try {
      for (let i = 0; i < 5000; i++) {
        const base = samples[Math.floor(r() * samples.length)]!;
        const text = r() < 0.5 ? JSON.stringify(mutateValue(r, base)) : mutateText(r, JSON.stringify(base));
        // never let the fuzzer release the unrelated call or touch its objects (that would be a legal request)
        if (text.includes(String(p.value).slice(0, 36))) continue;
        fuzzer.sendRaw(text);
        if (i % 100 === 0) {
          const pong = await fuzzer.request('ping');
          assert.ok(pong.result || pong.error, 'the server still answers the fuzzing connection');
        }
      }
    } finally {
      clearInterval(mediaTimer);
    }
    const unexpected = fuzzer.unmatched.filter((m) => m.error?.code === 40003 || m.error?.code === -32603);
    assert.deepEqual(unexpected.map((m) => m.error?.message), [], "no request hit an unexpected (non-Kurento) error path");
    const want = sentPackets;
    await pb.waitFor(() => pb.received.length >= want, 5000, `all ${want} packets of the unrelated call`);
    assert.equal(pb.received.length, want);
    assert.deepEqual(await owner.ok('ping'), { value: 'pong', sessionId: p.sessionId });
    await owner.ok('release', { object: p.value });
    await fuzzer.close();
    // whatever the fuzzer created belongs to its (now orphaned) session and has no live media, except
    // endpoints it negotiated; none of the unrelated call remains. Waits for the server to see the close.
    const st = await pollUntil(async () => { const s = await fetchStats(server.port); return s.pipelinesDetail.every((x) => x.orphaned) ? s : undefined; },
      { timeoutMs: 5_000, what: "the fuzzer's pipelines orphaned after its close" });
    assert.ok(!st.pipelinesDetail.some((x) => x.id === p.value));
    await server.mediaSet.closeAll();
    const zero = await fetchStats(server.port);
    assert.deepEqual([zero.pipelines, zero.elements, zero.boundPorts], [0, 0, 0]);
  });
});
