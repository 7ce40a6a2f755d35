import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import WebSocket from 'ws';
import { MediaServerProcess } from '../helpers/media-server-process';
import { MediaCall } from '../helpers/media-call';
import { RtpPhone } from '../helpers/rtp-phone';
import { pollUntil } from '../helpers/wait-for';

/**
 * docs/lifecycle.md S15 (release() on one endpoint takes the whole pipeline; a repeat release is a no-op)
 * and S16 (after all calls end: 0 pipelines, 0 elements, 0 bound ports, 0 live sessions, memory back
 * near its baseline) on ferry media, with calls ended every way the media server sees: app release,
 * RTCP BYE and ICMP on orphans. The gateway's Redis half of S16 is in s16-gateway-*.
 */
/** Raw JSON-RPC `release` of each id on a fresh connection (kurento-client may short-circuit a repeat release locally). */
async function rawRelease(url: string, ids: string[]): Promise<unknown[]> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const replies: unknown[] = [];
  try {
    for (const [i, id] of ids.entries()) {
      const reply = new Promise<unknown>((resolve) => ws.once('message', (m) => resolve(JSON.parse(m.toString()))));
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: i + 1, method: 'release', params: { object: id } }));
      replies.push(await reply);
    }
  } finally {
    ws.close();
  }
  return replies;
}

async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

describe('S15/S16: release everything, once; everything back to zero', () => {
  let media: MediaServerProcess;
  const calls: MediaCall[] = [];

  before(async () => {
    media = await MediaServerProcess.start({ FERRY_MEDIA_DEAD_MS: '3000', FERRY_MEDIA_AUTO_RELEASE: 'orphans' });
  });
  after(async () => {
    for (const c of calls) await c.close();
    await media.stop();
  });

  test('S15: release() on the RtpEndpoint releases the whole pipeline (both endpoints, ports); releasing again, and the pipeline, is a no-op', { timeout: 300_000 }, async () => {
    const call = await MediaCall.start({ media, phone: new RtpPhone({ rtcpIntervalMs: 1000 }) });
    calls.push(call);
    const { stats: during } = await media.waitForStats((s) => s.pipelines === 1 && s.elements >= 2 && s.boundPorts >= 2, 5000);
    assert.equal(during.pipelines, 1);
    assert.ok(during.elements >= 2, `two endpoints during the call: ${JSON.stringify(during)}`);
    assert.ok(during.boundPorts >= 2, `RTP/RTCP (+ICE) ports bound during the call: ${JSON.stringify(during)}`);
    const releasedAt = Date.now();
    await call.proxy.release('leg0');
    const { stats } = await media.waitForStats((s) => s.pipelines === 0, 2000);
    assert.equal(stats.elements, 0, 'the WebRtcEndpoint went with the RtpEndpoint');
    assert.equal(stats.boundPorts, 0);
    await call.proxy.release('leg0');
    await call.proxy.release('leg1');
    await call.proxy.release('pipeline');
    const ids = [call.answer!.legs[0]!.id, call.answer!.legs[1]!.id, call.answer!.pipelineId];
    for (const reply of await rawRelease(media.url, ids)) {
      assert.ok(reply && typeof reply === 'object' && 'result' in reply, `a repeat release on the wire succeeds (no-op): ${JSON.stringify(reply)}`);
    }
    assert.deepEqual(
      { pipelines: (await media.stats()).pipelines, elements: (await media.stats()).elements },
      { pipelines: 0, elements: 0 },
    );
    // Rule 4 applies to every release: peers are told (RTCP BYE to the phone, close_notify to the browser).
    await pollUntil(async () => (await call.phone.stats()).byeReceived >= 1 && call.webphone!.dtlsEndedAt() !== undefined,
      { timeoutMs: 3_000, what: `the phone's RTCP BYE and the webphone's DTLS close (${JSON.stringify(call.webphone!.dtlsStates)})` });
    const told = call.webphone!.dtlsEndedAt();
    assert.ok(told !== undefined && told - releasedAt < 1000, `webphone DTLS closed within 1 s: ${JSON.stringify(call.webphone!.dtlsStates)}`);
    await call.close();
  });

  test('S16: after calls ended by app release, RTCP BYE (orphan), ICMP (orphan) and proxy exit -> 0 pipelines, 0 elements, 0 bound ports, 0 sessions, RSS near baseline', { timeout: 300_000 }, async () => {
    const baseline = await rssKb(media.pid!);
    for (let round = 0; round < 2; round++) {
      const released = await MediaCall.start({ media, phone: new RtpPhone({ rtcpIntervalMs: 1000 }) });
      const byeOrphan = await MediaCall.start({ media, phone: new RtpPhone({ rtcpIntervalMs: 1000 }) });
      const icmpOrphan = await MediaCall.start({ media, phone: new RtpPhone({ rtcpIntervalMs: 1000 }) });
      calls.push(released, byeOrphan, icmpOrphan);
      // three calls up, each phone hearing the webphone (ICMP needs ferry media sending to the phone)
      await pollUntil(async () => {
        for (const c of [released, byeOrphan, icmpOrphan]) if ((await c.phone.stats()).rtpReceived <= 10) return false;
        return true;
      }, { timeoutMs: 10_000, stepMs: 50, what: 'RTP at the three phones' });
      assert.equal((await media.stats()).pipelines, 3);
      await released.proxy.release('pipeline');
      await released.proxy.kill('SIGTERM');
      await byeOrphan.proxy.kill('SIGKILL');
      await icmpOrphan.proxy.kill('SIGKILL');
      await byeOrphan.phone.sendBye();
      await byeOrphan.phone.stopMedia();
      await icmpOrphan.phone.closeSockets();
      await media.waitForStats((s) => s.pipelines === 0, 5000);
      for (const c of [released, byeOrphan, icmpOrphan]) await c.close();
    }
    const { stats } = await media.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0 && s.sessions === 0, 5000);
    assert.deepEqual({ pipelines: stats.pipelines, elements: stats.elements, boundPorts: stats.boundPorts, sessions: stats.sessions }, { pipelines: 0, elements: 0, boundPorts: 0, sessions: 0 });
    const afterKb = await rssKb(media.pid!);
    assert.ok(afterKb - baseline < 40_000, `RSS grew ${afterKb - baseline} kB over 6 calls (baseline ${baseline} kB)`);
  });
});
