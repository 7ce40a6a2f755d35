import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { parseRtcpCompound } from '../../src/media/rtcp/rtcp-packets';
import { call, connectKurento, fetchStats, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { pollPause, pollUntil } from '../helpers/wait-for';

/** The process contract of `bin/ferry media` (others' tests and `ferry start` depend on it). */
describe('media: bin/ferry media process', () => {
  const children: ChildProcess[] = [];
  const peers: RtpTestPeer[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    peers.forEach((p) => p.close());
  });

  test('prints one ready line with the bound port, serves /stats and kurento-client, SIGTERM tells the phone and exits 0', { timeout: 120_000 }, async () => {
    const child = spawn(process.execPath, [path.join(__dirname, '..', '..', 'bin', 'ferry'), 'media'], {
      env: { ...process.env, FERRY_MEDIA_PORT: '0', FERRY_MEDIA_HOST: '127.0.0.1', FERRY_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 20000;
    while (!stdout.includes('\n')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ready line; stderr:\n${stderr}`);
      await pollPause(25);
    }
    const m = /^ferry media ready (\{"port":(\d+)\})\n$/.exec(stdout);
    assert.ok(m, `ready line: ${JSON.stringify(stdout)}`);
    const port = Number(m[2]);
    assert.ok(port > 0 && port !== 8888);
    assert.ok(stderr.includes('"ferry media listening"'), 'logs go to stderr as JSON');

    const st = await fetchStats(port);
    assert.deepEqual([st.pipelines, st.elements, st.sessions, st.boundPorts], [0, 0, 0, 0]);

    const client = await connectKurento(`ws://127.0.0.1:${port}/kurento`);
    try {
      const pipeline = await client.create('MediaPipeline');
      const ep = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
      const phone = await RtpTestPeer.open();
      peers.push(phone);
      phone.useRemoteSdp(await call<string>(ep, 'processOffer', phone.sdp()));
      phone.send(0, Buffer.from('latch'));
      await pollUntil(async () => (await fetchStats(port)).boundPorts === 1, { timeoutMs: 3_000, what: 'one bound port' });
      child.kill('SIGTERM');
      const { code } = await exited;
      assert.equal(code, 0, `exit code; stderr:\n${stderr.slice(-2000)}`);
      assert.equal(stdout.split('\n').filter(Boolean).length, 1, 'exactly one stdout line');
      await phone.waitFor(() => phone.rtcpReceived.some((b) => parseRtcpCompound(b).bye), 2000, 'RTCP BYE on shutdown');
    } finally {
      client.close();
    }
  });
});
