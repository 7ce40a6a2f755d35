import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startStack, waitFor, type Stack } from '../helpers/stack';
import { SipInviteProbe } from '../helpers/sip-invite-probe';

/**
 * The real `ferry gateway` process with real ferry sip and ferry media: whatever kurento-client prints
 * on the console (its `console.trace` stack dumps for failed requests, its `reconnect to server` line
 * per attempt during a media outage) comes out as the gateway's own JSON log lines
 * (src/gateway/kurento/library-console.ts), without stacks, repeated lines rate-limited. ferry media is
 * started with one element per pipeline, so a call's second endpoint is refused (40009): the refusal
 * the gateway maps to 503 and kurento-client dumps a stack for.
 */

interface LogLine {
  message?: string;
  library?: string;
  method?: string;
  text?: string;
  suppressedSinceLastLine?: number;
}

function gatewayLines(stack: Stack): string[] {
  return stack.output.filter((l) => l.startsWith('[gateway] ')).map((l) => l.slice('[gateway] '.length));
}

function libraryLines(stack: Stack): LogLine[] {
  return gatewayLines(stack)
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.message === 'library console output');
}

/** Gateway output lines that are not JSON (the ready line is the process's one documented stdout line). */
function nonJsonLines(stack: Stack): string[] {
  return gatewayLines(stack).filter((l) => {
    if (l.startsWith('ferry gateway ready ')) return false;
    try {
      JSON.parse(l);
      return false;
    } catch {
      return true;
    }
  });
}

describe('gateway: kurento-client console output as log lines', { timeout: 90_000 }, () => {
  let stack: Stack | undefined;
  let probe: SipInviteProbe;
  let configDir: string;

  before(async () => {
    probe = await SipInviteProbe.open();
    configDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-library-console-'));
    const address = `127.0.0.1:${probe.port}`;
    const file = path.join(configDir, 'ferry.json');
    await writeFile(file, JSON.stringify({
      domain: 'ferry.local',
      users: [],
      trunks: [{ name: 'probe', address, transport: 'udp', acceptFrom: [address] }],
      routes: [{ match: '9(\\d+)', to: 'trunk:probe', rewrite: '$1' }],
    }));
    stack = await startStack({ env: { FERRY_SIP_CONFIG: file }, partEnv: { media: { FERRY_MEDIA_MAX_ELEMENTS_PER_PIPELINE: '1' } } });
  });

  after(async () => {
    await stack?.stop();
    await probe?.close();
    await rm(configDir, { recursive: true, force: true });
  });

  test('a create refused by the media server: the caller gets 503 + Retry-After; kurento-client\'s stack dump is one JSON line without a stack', async (t) => {
    try {
      const res = await probe.invite('sip:9123@ferry.local', { host: '127.0.0.1', port: stack!.sipPort });
      assert.equal(res.status, 503, `${res.status} ${res.reason}`);
      assert.match(res.headers.get('retry-after')?.[0] ?? '', /^\d+$/);
      const trace = await waitFor(
        () => libraryLines(stack!).find((l) => l.method === 'trace' && /Not enough resources/.test(l.text ?? '')),
        10_000, 20, "kurento-client's trace of the refused create as a log line",
      );
      assert.match(trace.library ?? '', /^kurento-client/);
      assert.match(trace.text ?? '', /code 40009/);
      assert.doesNotMatch(trace.text ?? '', /\bat .+:\d+:\d+/, 'no stack frame in the line');
      assert.deepEqual(nonJsonLines(stack!), [], 'every gateway output line is JSON');
    } catch (err) {
      t.diagnostic(stack!.output.slice(-40).join('\n'));
      throw err;
    }
  });

  test('a media outage: kurento-client\'s "reconnect to server" per attempt becomes at most one JSON line per 5 s, with the attempts in between counted', async (t) => {
    try {
      const killedAt = Date.now();
      await stack!.kill('media', 'SIGKILL');
      // the second line of the series says how many attempts were folded into it
      const folded = await waitFor(
        () => libraryLines(stack!).find((l) => /^reconnect to server/.test(l.text ?? '') && (l.suppressedSinceLastLine ?? 0) >= 2),
        20_000, 50, 'a reconnect line with folded attempts',
      );
      const elapsedMs = Date.now() - killedAt;
      const reconnectLines = libraryLines(stack!).filter((l) => /^reconnect to server/.test(l.text ?? ''));
      const attempts = reconnectLines.length + reconnectLines.reduce((n, l) => n + (l.suppressedSinceLastLine ?? 0), 0);
      t.diagnostic(`outage ${elapsedMs} ms: ${attempts} reconnect attempts printed by kurento-client, ${reconnectLines.length} log lines`);
      assert.equal(folded.library, 'kurento-client');
      assert.equal(folded.method, 'log');
      assert.ok(reconnectLines.length <= Math.ceil(elapsedMs / 5000) + 1, `${reconnectLines.length} lines in ${elapsedMs} ms`);
      assert.ok(attempts > reconnectLines.length, 'attempts were folded');
      assert.deepEqual(nonJsonLines(stack!), [], 'every gateway output line is JSON');
    } catch (err) {
      t.diagnostic(stack!.output.slice(-40).join('\n'));
      throw err;
    }
  });
});
