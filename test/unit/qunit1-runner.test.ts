import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { QUnit1 } from '../helpers/qunit1-runner';

/**
 * The QUnit 1.x runner that runs kurento-client's own test suite
 * (test/integration/media-kurento-client-upstream-suite.test.ts): a suite reported green must be one
 * whose tests really passed, so each way a QUnit 1.18 test fails is checked to be reported here.
 */
async function runOne(register: (q: QUnit1) => void, timeoutMs = 200): Promise<{ failures: string[]; assertions: number }> {
  const q = new QUnit1();
  q.config.testTimeout = timeoutMs;
  register(q);
  assert.equal(q.tests.length, 1);
  return q.run(q.tests[0]!);
}

describe('QUnit 1.x runner', { timeout: 10_000 }, () => {
  test('a passing async test passes; setup and teardown share its context and are awaited', async () => {
    const order: string[] = [];
    const r = await runOne((q) => {
      q.module('m', {
        setup(this: Record<string, unknown>) {
          q.stop();
          setTimeout(() => {
            this.value = 42;
            order.push('setup');
            q.start();
          }, 5);
        },
        teardown(this: Record<string, unknown>) {
          order.push(`teardown ${String(this.value)}`);
        },
      });
      q.asyncTest('t', function (this: Record<string, unknown>) {
        q.expect(1);
        setTimeout(() => {
          q.equal(this.value, 42);
          order.push('test');
          q.start();
        }, 5);
      });
    });
    assert.deepEqual(r.failures, []);
    assert.equal(r.assertions, 1);
    assert.deepEqual(order, ['setup', 'test', 'teardown 42']);
  });

  test('a failed assertion, a pushFailure, a wrong expect count and a throw each fail the test', async () => {
    assert.match((await runOne((q) => q.test('t', () => q.equal(1, 2, 'one is two')))).failures.join(), /one is two/);
    assert.match((await runOne((q) => q.test('t', () => q.pushFailure('boom')))).failures.join(), /boom/);
    assert.match(
      (await runOne((q) => q.test('t', () => {
        q.expect(2);
        q.ok(true);
      }))).failures.join(),
      /Expected 2 assertions, but 1 were run/,
    );
    assert.match((await runOne((q) => q.test('t', () => {
      throw new Error('thrown');
    }))).failures.join(), /Died on test.*thrown/);
  });

  test('an async test that never starts fails "Test timed out"; assert.async() called twice fails', async () => {
    assert.match((await runOne((q) => q.asyncTest('t', () => undefined), 50)).failures.join(), /Test timed out/);
    const twice = await runOne((q) =>
      q.test('t', (assert) => {
        const done = (assert as { async(): () => void }).async();
        setTimeout(() => {
          done();
          done();
        }, 5);
      }),
    );
    assert.match(twice.failures.join(), /more than once/);
  });

  test('start() given a non-number (a promise callback) resumes, as QUnit 1.18; start() below zero fails', async () => {
    const r = await runOne((q) => q.asyncTest('t', () => void Promise.resolve({ some: 'value' }).then(q.start.bind(q) as (v: unknown) => void)));
    assert.deepEqual(r.failures, []);
    const extra = await runOne((q) =>
      q.asyncTest('t', () => {
        setTimeout(() => {
          q.start();
          q.start();
        }, 5);
      }),
    );
    assert.match(extra.failures.join(), /Called start\(\) while already started/);
  });

  test('throws() matches an expected Error by constructor, name and message', async () => {
    const r = await runOne((q) =>
      q.test('t', () => {
        q.throws(() => {
          throw new SyntaxError('Client has been disconnected');
        }, new SyntaxError('Client has been disconnected'));
        q.throws(() => {
          throw new TypeError('Client has been disconnected');
        }, new SyntaxError('Client has been disconnected'), 'other class');
      }),
    );
    assert.equal(r.assertions, 2);
    assert.equal(r.failures.length, 1);
    assert.match(r.failures[0]!, /other class/);
  });
});
