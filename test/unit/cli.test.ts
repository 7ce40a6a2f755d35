import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const ferry = path.join(__dirname, '..', '..', 'bin', 'ferry');

test('ferry with no command prints usage naming every subcommand and exits 2', { timeout: 30_000 }, () => {
  const r = spawnSync(process.execPath, [ferry], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  for (const name of ['media', 'sip', 'gateway', 'start']) assert.match(r.stdout, new RegExp(`ferry ${name}`));
});

test('ferry with an unknown command names it and exits 2', { timeout: 30_000 }, () => {
  const r = spawnSync(process.execPath, [ferry, 'frobnicate'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command "frobnicate"/);
});
