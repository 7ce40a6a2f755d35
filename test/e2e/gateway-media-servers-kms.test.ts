import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../helpers/free-port';
import { MediaServerProcess } from '../helpers/media-server-process';
import { closePhonePairs, startPhonePairs, writePhonePairsConfig, type PhonePair } from '../helpers/trunk-phone-pairs';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * A media server without GET /stats, as a real Kurento Media Server is (docs/gateway.md, "Several
 * media servers": then the gateway counts its own live calls there). Kurento Media Server cannot run
 * here, so server K is a real `ferry media` behind a front on its own port that passes the
 * Kurento WebSocket through byte for byte and answers every plain HTTP request 404, as a server
 * without /stats does; server B is a `ferry media` with its /stats. Calls (scripted SIP/RTP
 * phones) spread over both: K's load is the gateway's own calls there, B's its pipelines.
 */
type Pair = PhonePair;

/** a TCP front: WebSocket upgrades go through to `target`; any other HTTP request gets 404 */
async function startKmsLikeFront(target: number): Promise<{ port: number; statsRequests: () => number; close(): Promise<void> }> {
  let stats = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    if (req.url === '/stats') stats++;
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const upstream = net.connect(target, '127.0.0.1', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    for (const s of [socket, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        socket.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    statsRequests: () => stats,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('several media servers: one without /stats (KMS-like) is loaded by the gateway\'s own calls there', { timeout: 180_000 }, () => {
  let stack: Stack | undefined;
  let mediaK: MediaServerProcess | undefined;
  let front: Awaited<ReturnType<typeof startKmsLikeFront>> | undefined;
  let dir = '';
  let portB = 0;
  const pairs: Pair[] = [];

  before(async () => {
    pairs.push(...(await startPhonePairs(4)));
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-media-servers-kms-'));
    const file = path.join(dir, 'ferry.json');
    await writePhonePairsConfig(file, pairs);
    mediaK = await MediaServerProcess.start();
    front = await startKmsLikeFront(mediaK.port);
    // the stack's own media server is B (with /stats), listed second
    portB = await freePort({ protocols: ['tcp'] });
    stack = await startStack({
      env: { FERRY_SIP_CONFIG: file },
      partEnv: {
        media: { FERRY_MEDIA_PORT: String(portB) },
        gateway: { FERRY_MEDIA_URL: `ws://127.0.0.1:${front.port}/kurento,ws://127.0.0.1:${portB}/kurento`, FERRY_GATEWAY_MEDIA_STATS_INTERVAL_MS: '250' },
      },
    });
  });

  after(async () => {
    await closePhonePairs(pairs);
    if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.slice(-120).join('\n'));
    await stack?.stop();
    await front?.close();
    await mediaK?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const urlK = (): string => `ws://127.0.0.1:${front!.port}/kurento`;
  const urlB = (): string => `ws://127.0.0.1:${portB}/kurento`;
  async function metricsText(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${stack!.httpPort}/metrics`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } })).text();
  }
  const metric = (text: string, name: string, url: string): number | undefined => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{url="${url}"} `));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };

  test('calls spread two and two; K (no /stats) is up, never draining, shows no pipelines figure; its calls carry RTP', async () => {
    await waitFor(() => front!.statsRequests() >= 2, 10_000, 50, 'the gateway asked K for /stats');
    const records: CallRecord[] = [];
    for (let i = 0; i < 4; i++) {
      const p = pairs[i]!;
      const since = Date.now();
      await p.caller.call(`sip:7${i}@127.0.0.1:${stack!.sipPort}`, { host: '127.0.0.1', port: stack!.sipPort });
      await waitFor(async () => (await p.callee.media.rtpReceivedBetween(since, Date.now())) > 20, 15_000, 50, `call ${i}: RTP at the callee`);
      await waitFor(async () => (await p.caller.media.rtpReceivedBetween(since, Date.now())) > 20, 15_000, 50, `call ${i}: RTP at the caller`);
      const { calls } = await getJson<{ calls: { id: string; caller: { party: string } }[] }>(stack!.httpPort, '/api/calls');
      records.push(await getJson<CallRecord>(stack!.httpPort, `/api/calls/${calls.find((c) => c.caller.party === `caller${i}`)!.id}`));
    }
    assert.deepEqual(records.map((r) => r.media.mediaUrl).sort(), [urlK(), urlK(), urlB(), urlB()].sort());
    assert.equal((await mediaK!.stats()).pipelines, 2, 'two pipelines behind K');
    assert.equal((await getJson<{ pipelines: number }>(portB, '/stats')).pipelines, 2, 'two on B');
    const m = await metricsText();
    assert.equal(metric(m, 'ferry_media_server_up', urlK()), 1);
    assert.equal(metric(m, 'ferry_media_server_draining', urlK()), 0);
    assert.equal(metric(m, 'ferry_media_server_pipelines', urlK()), undefined, 'no pipelines figure without /stats');
    assert.equal(metric(m, 'ferry_media_server_calls', urlK()), 2, "the gateway's own calls on K");
    assert.equal(metric(m, 'ferry_media_server_pipelines', urlB()), 2, 'B has its figure (positive control)');
    for (const p of pairs) {
      const at = await p.caller.hangup();
      await p.callee.waitForRequest('BYE', 5000, at);
      await p.caller.media.stopMedia();
      await p.callee.media.stopMedia();
    }
    await waitFor(async () => (await mediaK!.stats()).pipelines === 0, 5000, 50, 'K back to 0');
    await waitFor(async () => (await getJson<{ pipelines: number }>(portB, '/stats')).pipelines === 0, 5000, 50, 'B back to 0');
  });
});
