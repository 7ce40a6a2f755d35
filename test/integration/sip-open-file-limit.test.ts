/**
 * ferry sip refuses connections past FERRY_SIP_MAX_CONNECTIONS (4096) — if the process may open that many.
 * Under a common open-file limit of 1024, connections from a few sources (50 each) used up the descriptors
 * first: accept failed, new connections were reset, nothing said why (measured with a limit of 200: 360
 * connections from 8 sources, 183 dropped by the kernel-side accept trick, a new client reset, not one line
 * logged). `ferry sip` now says so at start in one line when the cap does not fit under its limit.
 * Positive control: a cap that fits prints nothing.
 *
 * `bin/ferry sip` as a child under `ulimit -n 512` (bash), every port 0; the limit parser on sample text.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { openFileLimit, openFileLimitWarning } from '../../src/common/open-file-limit';
import { pollUntil } from '../helpers/wait-for';

const BIN = path.resolve(__dirname, '../../bin/ferry');

/** runs `ferry sip` under an open-file limit of 512 until its ready line, then stops it; returns its stderr */
async function sipUnderLimit(env: Record<string, string>): Promise<string> {
  const child = spawn('bash', ['-c', `ulimit -n 512 && exec "${process.execPath}" "${BIN}" sip`], {
    env: { ...process.env, FERRY_SIP_HOST: '127.0.0.1', FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  try {
    await pollUntil(() => out.includes('ferry sip ready '), { timeoutMs: 20_000, what: `ferry sip's ready line (stderr: ${err.slice(-500)})` });
  } finally {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await exited;
  }
  return err;
}

describe('ferry sip says when its connection cap does not fit under its open-file limit', { timeout: 60_000 }, () => {
  test('the limit is read from /proc/self/limits text; unlimited or missing is unknown', () => {
    const sample = 'Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n';
    assert.equal(openFileLimit(sample), 1024);
    assert.equal(openFileLimit(sample.replace('1024 ', 'unlimited ')), undefined);
    assert.equal(openFileLimit('nothing here'), undefined);
    assert.equal(typeof openFileLimit(), 'number', 'this process\'s own limit is read');
    assert.equal(openFileLimitWarning('ferry sip', 'FERRY_SIP_MAX_CONNECTIONS', 4096, undefined), undefined);
    assert.equal(openFileLimitWarning('ferry sip', 'FERRY_SIP_MAX_CONNECTIONS', 4096, 1024 * 1024), undefined);
  });

  test('the default cap (4096) under a limit of 512: one warning line naming the cap, the limit and what to change; a cap of 200: none', async () => {
    const warned = await sipUnderLimit({});
    const lines = warned.split('\n').filter((l) => l.includes('WARNING'));
    assert.equal(lines.length, 1, warned);
    assert.match(lines[0]!, /^ferry sip: WARNING: FERRY_SIP_MAX_CONNECTIONS=4096 .* open-file limit of 512: .*ulimit -n.* or lower FERRY_SIP_MAX_CONNECTIONS$/);
    const quiet = await sipUnderLimit({ FERRY_SIP_MAX_CONNECTIONS: '200' });
    assert.equal(quiet.split('\n').filter((l) => l.includes('WARNING')).length, 0, quiet);
  });
});
