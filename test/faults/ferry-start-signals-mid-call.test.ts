import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LineProcess } from '../helpers/line-process';
import { descendants, waitUntilGone } from '../helpers/process-tree';
import { RtpPhone } from '../helpers/rtp-phone';
import { SipPhone } from '../helpers/sip-phone';
import { waitFor } from '../helpers/stack';

/**
 * F6 with a call up: when `ferry start` is told to stop by its terminal (SIGHUP) or is SIGKILLed,
 * a call in progress really ends — so both parties are told (a BYE each, from ferry sip's graceful
 * stop) — and no ferry process remains. Two scripted SIP phones (trunks "a" and "b", real RTP) call
 * each other through ferry start; RTP flows both ways before the signal (positive control).
 */
const BIN = path.join(__dirname, '..', '..', 'bin', 'ferry');
const BOUND_MS = 2000;
const root = mkdtempSync(path.join(tmpdir(), 'ferry-f6-call-'));
const cleanup: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
  rmSync(root, { recursive: true, force: true });
});

function writeTwoTrunkConfig(a: number, b: number): string {
  const file = path.join(root, `two-trunks-${a}-${b}.json`);
  const trunk = (name: string, port: number) => ({ name, address: `127.0.0.1:${port}`, transport: 'udp', acceptFrom: [`127.0.0.1:${port}`] });
  writeFileSync(file, JSON.stringify({
    domain: 'ferry.local',
    users: [{ user: 'alice', password: 'alice-f6-secret' }],
    trunks: [trunk('a', a), trunk('b', b)],
    routes: [{ match: '9(\\d+)', to: 'trunk:b', rewrite: '$1' }, { match: '.*', to: 'user' }],
  }, null, 2));
  return file;
}

interface CallWorld {
  caller: SipPhone;
  callee: SipPhone;
  ferry: LineProcess;
  ready: { sip: number };
  tree: number[];
}

/** two phones and a ferry start between them, ready (cleaned up after the file) */
async function startCallWorld(): Promise<CallWorld> {
  const caller = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'a' });
  const callee = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'b' });
  cleanup.push(() => caller.close(), () => callee.close());
  const config = writeTwoTrunkConfig(await caller.start(), await callee.start());
  const ferry = LineProcess.spawn(process.execPath, [BIN, 'start'], {
    NODE_ENV: 'test', FERRY_LOG_LEVEL: 'warn', FERRY_SIP_CONFIG: config, FERRY_DATA_DIR: mkdtempSync(path.join(root, 'data-')), REDIS_URL: '',
    FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', FERRY_MEDIA_PORT: '0', FERRY_HTTP_PORT: '0',
  });
  cleanup.push(() => ferry.kill('SIGKILL'));
  const ready = JSON.parse((await ferry.waitForLine(/^ferry ready (\{.*\})$/, 40_000))[1]!) as { sip: number };
  const tree = descendants(ferry.pid).map((d) => d.pid);
  cleanup.push(() => tree.forEach((pid) => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }));
  return { caller, callee, ferry, ready, tree };
}

// the two scenarios' ferry starts start side by side, both ready before either signal
const worlds = new Map<string, CallWorld>();
before(async () => {
  await Promise.all(['SIGHUP', 'SIGKILL'].map(async (signal) => worlds.set(signal, await startCallWorld())));
});

for (const signal of ['SIGHUP', 'SIGKILL'] as const) {
  describe(`F6: ${signal} of ferry start mid-call`, { timeout: 90_000 }, () => {
    test(`F6: ${signal} of ferry start mid-call → both phones get a BYE and no ferry process remains, < 2 s`, async () => {
      const { caller, callee, ferry, ready, tree } = worlds.get(signal)!;

      const since = Date.now();
      await caller.call('sip:9123@ferry.local', { host: '127.0.0.1', port: ready.sip });
      assert.ok(callee.inCall, 'the callee answered');
      await waitFor(async () => (await caller.media.rtpReceivedBetween(since, Date.now())) > 20, 10_000, 50, 'RTP b -> a');
      await waitFor(async () => (await callee.media.rtpReceivedBetween(since, Date.now())) > 20, 10_000, 50, 'RTP a -> b');
      assert.equal(caller.received.filter((r) => r.method === 'BYE').length, 0, 'no BYE before the signal');

      const sentAt = Date.now();
      ferry.kill(signal);
      const [byeA, byeB] = await Promise.all([caller.waitForRequest('BYE', BOUND_MS, sentAt), callee.waitForRequest('BYE', BOUND_MS, sentAt)]);
      const took = await waitUntilGone([ferry.pid, ...tree], BOUND_MS, sentAt);
      process.stdout.write(`# F6 ${signal} mid-call: BYE at the caller ${byeA.at - sentAt} ms, at the callee ${byeB.at - sentAt} ms (Reason: ${byeA.message.headers.get('reason')?.[0]}); tree gone ${took} ms\n`);
      for (const bye of [byeA, byeB]) {
        assert.ok(bye.at - sentAt < BOUND_MS);
        assert.ok(bye.message.headers.get('reason')?.[0], `the BYE says why: ${bye.message.startLine}`);
      }
    });
  });
}
