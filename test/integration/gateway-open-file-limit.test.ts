/**
 * The gateway's HTTP and HTTPS server (webphone page, API, /metrics) refuses connections past
 * FERRY_HTTP_MAX_CONNECTIONS (1024) — if the process may open that many. Under an open-file limit below the
 * cap plus the descriptors the gateway needs besides (SIP control, media servers, Redis, webhooks, files),
 * a stranger opening connections uses up the descriptors first: accept fails, the gateway's own sockets to
 * ferry sip, the media servers and Redis fail, nothing says why. `ferry gateway` now says so in one line once
 * its configuration is read, as `ferry sip` does for its SIP connections (sip-open-file-limit.test.ts).
 * Positive control: a cap that fits prints nothing.
 *
 * `bin/ferry gateway` as a child under `ulimit -n 512` (bash), its HTTP port 0 on loopback; nothing else
 * runs (the gateway keeps retrying its media server and SIP engine, which is all this needs: its first log line
 * comes after the check; logs go to stderr).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { pollUntil } from '../helpers/wait-for';

const BIN = path.resolve(__dirname, '../../bin/ferry');

/** runs `ferry gateway` under an open-file limit of 512 until its first log line (stderr, JSON), then stops it; returns all its stderr */
async function gatewayUnderLimit(env: Record<string, string>): Promise<string> {
  const child = spawn('bash', ['-c', `ulimit -n 512 && exec "${process.execPath}" "${BIN}" gateway`], {
    env: { ...process.env, FERRY_HTTP_HOST: '127.0.0.1', FERRY_HTTP_PORT: '0', FERRY_HTTPS_PORT: '0', REDIS_URL: '', FERRY_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stdout.resume();
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const closed = new Promise<void>((r) => child.once('close', () => r()));
  try {
    await pollUntil(() => err.includes('{"component"'), { timeoutMs: 20_000, what: 'ferry gateway\'s first log line' });
  } finally {
    child.kill('SIGKILL');
    // 'close': the process is gone and both pipes are read to their end
    await closed;
  }
  return err;
}

describe('ferry gateway says when its HTTP connection cap does not fit under its open-file limit', { timeout: 60_000 }, () => {
  test('the default cap (1024) under a limit of 512: one warning line naming the cap, the limit and what to change; a cap of 200: none', { timeout: 50_000 }, async () => {
    const warned = await gatewayUnderLimit({});
    const lines = warned.split('\n').filter((l) => l.includes('WARNING'));
    assert.equal(lines.length, 1, warned);
    assert.match(lines[0]!, /^ferry gateway: WARNING: FERRY_HTTP_MAX_CONNECTIONS=1024 .* open-file limit of 512: .*ulimit -n.* or lower FERRY_HTTP_MAX_CONNECTIONS$/);
    const quiet = await gatewayUnderLimit({ FERRY_HTTP_MAX_CONNECTIONS: '200' });
    assert.equal(quiet.split('\n').filter((l) => l.includes('WARNING')).length, 0, quiet);
  });
});
