/**
 * A QUnit 1.x runner for kurento-client's own test files (test/fixtures/kurento-client-upstream/), which
 * were written for QUnit 1.18 under qunit-cli. It implements the part of QUnit 1.18's API those files use,
 * with QUnit 1.18's semantics:
 * - `QUnit.module(name, {setup, teardown})` (or `{beforeEach, afterEach}`), `QUnit.test(name, [expected,] fn)`, `QUnit.asyncTest(...)`
 *   (a test that starts stopped once);
 * - the semaphore: `QUnit.stop()` / `QUnit.start()` and `assert.async()`; a test (and its setup, and its
 *   teardown) is over when the semaphore is back to 0; `start()` below 0 is a failure ("Called start()
 *   while already started"), a second call of an `assert.async()` callback too;
 * - `config.testTimeout`, read when the semaphore is raised: the test fails "Test timed out";
 * - assertions on `assert` and on `QUnit` (`ok`, `equal` (==), `notEqual`, `strictEqual`,
 *   `notStrictEqual`, `deepEqual`, `notDeepEqual`, `throws`), `expect(n)` checked at the end of the test
 *   ("Expected n assertions, but m were run"), `QUnit.pushFailure(message, source)`;
 * - a test function that throws fails "Died on test #n"; a returned thenable holds the test until settled.
 * One thing differs, on purpose: an exception thrown asynchronously while a test runs (QUnit in a browser
 * sees it through window.onerror) fails the current test and ends it at once instead of leaving it to
 * its timeout.
 * The context (`this`) of setup, test and teardown is one object per test, a copy of the module's
 * lifecycle object, as in QUnit 1.x.
 */
import { isDeepStrictEqual } from 'node:util';

export interface QUnitTestResult {
  module: string;
  name: string;
  /** failures, in the order they happened; empty = passed */
  failures: string[];
  assertions: number;
  durationMs: number;
}

interface Lifecycle {
  setup?: (this: Record<string, unknown>, assert: unknown) => void;
  teardown?: (this: Record<string, unknown>, assert: unknown) => void;
  /** QUnit 1.16+ names of setup / teardown */
  beforeEach?: (this: Record<string, unknown>, assert: unknown) => void;
  afterEach?: (this: Record<string, unknown>, assert: unknown) => void;
  [key: string]: unknown;
}

export interface RegisteredTest {
  module: string;
  name: string;
  lifecycle: Lifecycle;
  expected: number | null;
  async: boolean;
  fn: (this: Record<string, unknown>, assert: unknown) => unknown;
}

interface Running {
  result: QUnitTestResult;
  expected: number | null;
  semaphore: number;
  timeout: NodeJS.Timeout | undefined;
  resume: (() => void) | undefined;
}

export class QUnit1 {
  readonly config: Record<string, unknown> & { urlConfig: unknown[]; testTimeout: number; prefix?: string } = {
    urlConfig: [],
    testTimeout: 30_000,
  };
  readonly tests: RegisteredTest[] = [];
  /** failures outside any test (a late callback of a finished test) */
  readonly strayFailures: string[] = [];
  private currentModule = '';
  private currentLifecycle: Lifecycle = {};
  private running: Running | undefined;

  // --- registration ---------------------------------------------------------------------------
  module = (name: string, lifecycle?: Lifecycle): void => {
    this.currentModule = name;
    this.currentLifecycle = lifecycle ?? {};
  };

  test = (name: string, expectedOrFn: number | RegisteredTest['fn'], maybeFn?: RegisteredTest['fn']): void => {
    this.register(name, expectedOrFn, maybeFn, false);
  };

  asyncTest = (name: string, expectedOrFn: number | RegisteredTest['fn'], maybeFn?: RegisteredTest['fn']): void => {
    this.register(name, expectedOrFn, maybeFn, true);
  };

  private register(name: string, expectedOrFn: number | RegisteredTest['fn'], maybeFn: RegisteredTest['fn'] | undefined, async: boolean): void {
    const fn = typeof expectedOrFn === 'function' ? expectedOrFn : maybeFn!;
    const expected = typeof expectedOrFn === 'number' ? expectedOrFn : null;
    this.tests.push({ module: this.currentModule, name, lifecycle: this.currentLifecycle, expected, async, fn });
  }

  // --- flow control -----------------------------------------------------------------------------
  stop = (count = 1): void => {
    const r = this.running;
    if (!r) return;
    r.semaphore += count;
    if (r.timeout) clearTimeout(r.timeout);
    const ms = Number(this.config.testTimeout);
    r.timeout = setTimeout(() => {
      if (this.running !== r) return;
      this.fail(r, 'Test timed out');
      r.semaphore = 1;
      this.start();
    }, ms);
  };

  start = (count?: unknown): void => {
    const r = this.running;
    if (!r) return;
    // QUnit 1.18: `semaphore -= count || 1`. A test may pass start as a promise callback
    // (`tx.then(QUnit.start.bind(QUnit))`), so count can be any value: a non-number makes the semaphore
    // NaN, which QUnit treats as "not above 0, not below 0": the test resumes.
    r.semaphore -= (count || 1) as number;
    if (Number.isNaN(r.semaphore)) r.semaphore = 0;
    if (r.semaphore > 0) return;
    if (r.semaphore < 0) {
      r.semaphore = 0;
      this.fail(r, "Called start() while already started (test's semaphore was 0 already)");
      return;
    }
    if (r.timeout) clearTimeout(r.timeout);
    r.timeout = undefined;
    const resume = r.resume;
    r.resume = undefined;
    // QUnit 1.x resumes on a timer too (config.updateRate), never inside the caller's stack
    if (resume) setImmediate(resume);
  };

  expect = (n: number): void => {
    if (this.running) this.running.expected = n;
  };

  pushFailure = (message: unknown, source?: unknown): void => {
    const text = `${String(message)}${source ? `\n${String(source)}` : ''}`;
    if (this.running) this.fail(this.running, text);
    else this.strayFailures.push(text);
  };

  // --- assertions (on `assert` and, as in QUnit 1.x, on QUnit itself) ------------------------------
  private push(ok: boolean, message: string): void {
    const r = this.running;
    if (!r) {
      this.strayFailures.push(`assertion outside a test: ${message}`);
      return;
    }
    r.result.assertions++;
    if (!ok) this.fail(r, message);
  }

  ok = (value: unknown, message?: string): void => this.push(Boolean(value), `ok: ${message ?? ''} (got ${describe(value)})`);
  equal = (actual: unknown, expected: unknown, message?: string): void =>
    // eslint-disable-next-line eqeqeq
    this.push(actual == expected, `equal: ${message ?? ''} (got ${describe(actual)}, expected ${describe(expected)})`);
  notEqual = (actual: unknown, expected: unknown, message?: string): void =>
    // eslint-disable-next-line eqeqeq
    this.push(actual != expected, `notEqual: ${message ?? ''} (got ${describe(actual)})`);
  strictEqual = (actual: unknown, expected: unknown, message?: string): void =>
    this.push(actual === expected, `strictEqual: ${message ?? ''} (got ${describe(actual)}, expected ${describe(expected)})`);
  notStrictEqual = (actual: unknown, expected: unknown, message?: string): void =>
    this.push(actual !== expected, `notStrictEqual: ${message ?? ''} (got ${describe(actual)})`);
  deepEqual = (actual: unknown, expected: unknown, message?: string): void =>
    this.push(isDeepStrictEqual(actual, expected), `deepEqual: ${message ?? ''} (got ${describe(actual)})`);
  notDeepEqual = (actual: unknown, expected: unknown, message?: string): void =>
    this.push(!isDeepStrictEqual(actual, expected), `notDeepEqual: ${message ?? ''}`);
  /** QUnit 1.18 `throws(fn, expected)`: an Error instance as expected matches by constructor, name and message. */
  throws = (fn: () => unknown, expected?: unknown, message?: string): void => {
    let thrown: unknown;
    let threw = false;
    try {
      fn();
    } catch (e) {
      threw = true;
      thrown = e;
    }
    let ok = threw;
    if (threw && expected instanceof Error) {
      const e = thrown as Error;
      ok = e instanceof (expected.constructor as new () => unknown) && e.name === expected.name && e.message === expected.message;
    }
    else if (threw && expected instanceof RegExp) ok = expected.test(String(thrown));
    else if (threw && typeof expected === 'function') ok = thrown instanceof (expected as new () => unknown);
    this.push(ok, `throws: ${message ?? ''} (${threw ? `threw ${describe(thrown)}` : 'did not throw'}, expected ${describe(expected)})`);
  };

  private fail(r: Running, message: string): void {
    r.result.failures.push(message);
  }

  private makeAssert(r: Running): Record<string, unknown> {
    return {
      ok: this.ok,
      equal: this.equal,
      notEqual: this.notEqual,
      strictEqual: this.strictEqual,
      notStrictEqual: this.notStrictEqual,
      deepEqual: this.deepEqual,
      notDeepEqual: this.notDeepEqual,
      throws: this.throws,
      expect: this.expect,
      async: () => {
        this.stop();
        let called = false;
        return () => {
          if (this.running !== r) return;
          if (called) {
            this.fail(r, 'Called the callback returned from `assert.async` more than once');
            return;
          }
          called = true;
          this.start();
        };
      },
    };
  }

  /** Hand an exception that escaped to the event loop to the running test (see the header). */
  uncaught(error: unknown): boolean {
    const r = this.running;
    if (!r) return false;
    const e = error as { message?: string; stack?: string };
    this.fail(r, `Uncaught exception: ${e?.message ?? String(error)}\n${e?.stack ?? ''}`);
    r.semaphore = 1;
    this.start();
    return true;
  }

  // --- running ----------------------------------------------------------------------------------
  /** Run one registered test: setup, test, teardown, each to its semaphore's 0, then the expect check. */
  async run(t: RegisteredTest): Promise<QUnitTestResult> {
    const started = Date.now();
    const result: QUnitTestResult = { module: t.module, name: t.name, failures: [], assertions: 0, durationMs: 0 };
    const r: Running = { result, expected: t.expected, semaphore: 0, timeout: undefined, resume: undefined };
    this.running = r;
    const env: Record<string, unknown> = { ...t.lifecycle };
    delete env.setup;
    delete env.teardown;
    delete env.beforeEach;
    delete env.afterEach;
    const setup = t.lifecycle.setup ?? t.lifecycle.beforeEach;
    const teardown = t.lifecycle.teardown ?? t.lifecycle.afterEach;
    const assert = this.makeAssert(r);
    const phase = async (label: string, body: (() => unknown) | undefined, async: boolean): Promise<void> => {
      if (!body) return;
      const settled = new Promise<void>((resolve) => {
        r.resume = resolve;
      });
      if (async) this.stop();
      try {
        const value = body();
        if (value && typeof (value as { then?: unknown }).then === 'function') {
          this.stop();
          (value as Promise<unknown>).then(
            () => this.start(),
            (e: unknown) => {
              this.fail(r, `Promise rejected during ${label}: ${(e as Error)?.message ?? String(e)}`);
              this.start();
            },
          );
        }
      } catch (e) {
        this.fail(r, `Died on ${label} #${result.assertions + 1}: ${(e as Error)?.message ?? String(e)}\n${(e as Error)?.stack ?? ''}`);
        r.semaphore = Math.max(r.semaphore, 1);
        this.start();
      }
      if (r.semaphore === 0) {
        r.resume = undefined;
        return;
      }
      await settled;
    };
    await phase('setup', setup ? () => setup.call(env, assert) : undefined, false);
    await phase('test', () => t.fn.call(env, assert), t.async);
    await phase('teardown', teardown ? () => teardown.call(env, assert) : undefined, false);
    if (r.expected !== null && r.expected !== result.assertions) {
      this.fail(r, `Expected ${r.expected} assertions, but ${result.assertions} were run`);
    }
    if (r.timeout) clearTimeout(r.timeout);
    this.running = undefined;
    result.durationMs = Date.now() - started;
    return result;
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  try {
    const s = JSON.stringify(value);
    return s === undefined ? String(value) : s.length > 200 ? `${s.slice(0, 200)}…` : s;
  } catch {
    return String(value);
  }
}
