import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LineProcess } from '../helpers/line-process';
import { isRunning } from '../helpers/process-tree';
import { pollPause } from '../helpers/wait-for';

/**
 * F8 in the other parts: the same stray rejection and uncaught exception (test-only preload,
 * triggered by SIGUSR2) inside `ferry gateway` and `ferry sip`, run by `ferry start`, are logged on
 * one line each and survived: the gateway counts them in /metrics `ferry_process_faults_total`,
 * ferry sip logs them; neither process is restarted (same pid), and the gateway still serves its API.
 */
const BIN = path.join(__dirname, '..', '..', 'bin', 'ferry');
const INJECTOR = path.join(__dirname, '..', 'helpers', 'process-fault-injector.ts');
const dataDir = mkdtempSync(path.join(tmpdir(), 'ferry-f8-'));
let ferry: LineProcess | undefined;
after(async () => {
  if (ferry) {
    ferry.kill('SIGTERM');
    await ferry.exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

async function metrics(http: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^ferry_process_faults_total\{kind="(\w+)"\} (\d+)$/gm)) counts[m[1]!] = Number(m[2]);
  return counts;
}

function faultLines(p: LineProcess, part: string): Record<string, unknown>[] {
  const prefix = `[${part}] `;
  return p.stderr
    .filter((l) => l.startsWith(prefix) && l.includes('process fault survived'))
    .map((l) => JSON.parse(l.slice(prefix.length)) as Record<string, unknown>);
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await pollPause(20);
  }
}

describe('F8: stray faults inside ferry gateway and ferry sip', { timeout: 90_000 }, () => {
  test('F8: gateway and sip log and survive a stray rejection and an exception; the gateway counts them in /metrics', async () => {
    ferry = LineProcess.spawn(process.execPath, [BIN, 'start'], {
      NODE_ENV: 'test', FERRY_LOG_LEVEL: 'warn', FERRY_DATA_DIR: dataDir,
      FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', FERRY_MEDIA_PORT: '0', FERRY_HTTP_PORT: '0',
      NODE_OPTIONS: `--require ${require.resolve('tsx/cjs')} --require ${INJECTOR}`,
    });
    const ready = JSON.parse((await ferry.waitForLine(/^ferry ready (\{.*\})$/, 40_000))[1]!) as { http: number; pids: Record<string, number> };
    const { gateway, sip } = ready.pids as { gateway: number; sip: number };
    assert.deepEqual(await metrics(ready.http), { unhandledRejection: 0, uncaughtException: 0, guardedCallback: 0 }, 'positive control: none yet');

    process.kill(gateway, 'SIGUSR2');
    process.kill(sip, 'SIGUSR2');
    await until('gateway counts both faults', async () => {
      const m = await metrics(ready.http);
      return m.unhandledRejection === 1 && m.uncaughtException === 1;
    }, 10_000);
    // a log line travels the part's stderr and ferry start's pipe, so it can arrive after /metrics already counts it
    await until('gateway logs both faults', () => faultLines(ferry!, 'gateway').length === 2, 10_000);
    await until('sip logs both faults', () => faultLines(ferry!, 'sip').length === 2, 10_000);

    for (const part of ['gateway', 'sip']) {
      const lines = faultLines(ferry, part);
      assert.deepEqual(lines.map((l) => l.kind).sort(), ['uncaughtException', 'unhandledRejection'], `${part}: ${ferry.stderr.join('\n')}`);
      assert.ok(lines.some((l) => l.error === 'Error: injected stray rejection'));
      assert.ok(lines.some((l) => l.error === 'Error: injected uncaught exception'));
    }
    assert.ok(isRunning(gateway) && isRunning(sip), 'both still run');
    assert.ok(!ferry.stderr.some((l) => l.includes('exited unexpectedly')), 'nothing was restarted');
    // ferry start generated the API token into its data directory
    const token = readFileSync(path.join(dataDir, 'api-token'), 'utf8').trim();
    const calls = await fetch(`http://127.0.0.1:${ready.http}/api/calls`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(calls.status, 200, 'the gateway still serves its API');
    assert.ok(token.length >= 32 && ![...ferry.stdout, ...ferry.stderr].some((l) => l.includes(token)), 'ferry start printed where the token is, never the token');
    assert.ok(ferry.stdout.some((l) => l.includes(path.join(dataDir, 'api-token'))), 'ferry start printed the token file');
    assert.deepEqual(await metrics(ready.http), { unhandledRejection: 1, uncaughtException: 1, guardedCallback: 0 });
  });
});
