import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { secretMatches } from '../../src/sip/control/secret-match';

/** The drachtio control port's secret check: right answers for every shape of input, through the constant-time compare. */

test('secretMatches: the same secret matches; a different, shorter, longer, empty or missing one does not', { timeout: 5_000 }, () => {
  assert.equal(secretMatches('cymru', 'cymru'), true);
  assert.equal(secretMatches('s3cret-with-ünïcode', 's3cret-with-ünïcode'), true);
  for (const offered of ['cymrU', 'cymr', 'cymru ', '', 'x'.repeat(10_000), undefined]) {
    assert.equal(secretMatches(offered, 'cymru'), false, JSON.stringify(offered));
  }
  assert.equal(secretMatches('', ''), true, 'an empty configured secret matches only an empty one');
  assert.equal(secretMatches(undefined, ''), false, 'a missing token is never a match');
});

test('the control server checks the secret with secretMatches, never with a plain comparison', { timeout: 5_000 }, () => {
  const source = readFileSync(path.join(__dirname, '..', '..', 'src', 'sip', 'control', 'control-server.ts'), 'utf8');
  assert.match(source, /secretMatches\(tokens\[2\], this\.options\.secret\)/);
  assert.doesNotMatch(source, /[!=]==?\s*this\.options\.secret|this\.options\.secret\s*[!=]==?/);
});

test('the real drachtio-srf: the right secret connects, a wrong one of the same length and a longer one are refused', { timeout: 20_000 }, async () => {
  const { startSipEngine } = await import('../../src/sip/sip-engine-server');
  const { connectSrf } = await import('../helpers/srf-app');
  const engine = await startSipEngine({ sipPort: 0, wsPort: 0, controlPort: 0, secret: 'right-secret' });
  try {
    const control = { host: '127.0.0.1', port: engine.ports.control };
    for (const secret of ['wrong-secret', 'right-secret-and-more']) {
      await assert.rejects(connectSrf({ ...control, secret }, () => {}, 5_000), /incorrect secret|authenticat/i, secret);
    }
    const ok = await connectSrf({ ...control, secret: 'right-secret' }, () => {}, 5_000);
    assert.match(ok.hostports, /udp\//, 'positive control: the right secret is accepted');
    ok.close();
  } finally {
    await engine.close();
  }
});
