import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');

/**
 * Starts `bin/ferry sip` on free ports with `env` added and asserts it refuses to start: exit code 1, exactly
 * one line on stderr matching `message`, never the ready line.
 */
export async function expectFerrySipRefusesToStart(env: Record<string, string>, message: RegExp): Promise<void> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/ferry'), 'sip'], {
    cwd: ROOT, env: { ...process.env, FERRY_SIP_HOST: '127.0.0.1', FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  assert.equal(code, 1, JSON.stringify(env));
  const lines = err.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line: ${err}`);
  assert.match(lines[0]!, message);
  assert.doesNotMatch(out, /ferry sip ready/);
}
