import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { errorForLog } from '../../src/common/process-faults';

/** Logs are one line per event: no log call in src/ puts an error's stack into a line. */

const SRC = path.join(__dirname, '..', '..', 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('errorForLog: name and message, and the first frame, on one line', { timeout: 5_000 }, () => {
  const fields = errorForLog(new TypeError('bad packet'));
  assert.equal(fields.error, 'TypeError: bad packet');
  assert.match(fields.at ?? '', /^at .*log-no-stacks\.test\.ts/);
  assert.doesNotMatch(JSON.stringify(fields), /\\n/);
  assert.deepEqual(errorForLog('plain'), { error: 'plain' });
});

test('no logger call in src/ logs err.stack', { timeout: 10_000 }, () => {
  const offenders: string[] = [];
  const logCall = /\b(?:log|logger|this\.log|this\.logger|options\.logger)\.(?:error|warn|info|debug|log)\(/;
  let calls = 0;
  for (const file of sources(SRC)) {
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (!logCall.test(line)) return;
      calls++;
      // the call and its next lines (meta objects spread over several lines)
      const call = lines.slice(i, i + 4).join(' ');
      if (/\.stack\b/.test(call)) offenders.push(`${path.relative(SRC, file)}:${i + 1}`);
    });
  }
  assert.ok(calls > 50, `positive control: the scan sees the logger calls (${calls})`);
  assert.deepEqual(offenders, []);
});
