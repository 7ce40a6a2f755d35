import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

/**
 * bench:media's --nice n: the servers and load workers it spawns run at niceness n, whatever the
 * orchestrator's own niceness (run.ts sets its own to n first, and `nice -n` adds to the caller's).
 * Checked with the real `nice`, which prints the niceness it runs at when given no command.
 */
const NICENESS_MODULE = path.resolve(__dirname, '../../bench/media/servers/niceness.ts');

/** runs a child node at `ownNiceness` (via nice) that spawns `nice` through niced() and returns what it printed */
function spawnedNiceness(benchNice: number, ownNiceness: number): number {
  const script = `
    const { spawnSync } = require('node:child_process');
    const { niced } = require(${JSON.stringify(NICENESS_MODULE)});
    const [cmd, args] = niced('nice', []);
    process.stdout.write(spawnSync(cmd, args, { encoding: 'utf8' }).stdout.trim());
  `;
  const r = spawnSync('nice', ['-n', String(ownNiceness), process.execPath, '--import', 'tsx', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, FERRY_BENCH_NICE: String(benchNice) },
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout);
}

describe('bench --nice: the niceness the spawned servers run at', { timeout: 60_000 }, () => {
  test('an orchestrator already at n spawns at n (not 2n)', () => {
    assert.equal(spawnedNiceness(5, 5), 5);
  });

  test('an orchestrator at 0 spawns at n; unset spawns at its own', () => {
    assert.equal(spawnedNiceness(5, 0), 5);
    assert.equal(spawnedNiceness(0, 3), 3, 'positive control: no --nice leaves the inherited niceness');
  });
});
