import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { callingLibrary, consoleText, routeLibraryConsole } from '../../src/gateway/kurento/library-console';
import { captureLog } from '../helpers/captured-log';

/** The gateway's console routing (src/gateway/kurento/library-console.ts) on a fake clock, logger lines captured. */

describe('gateway library console', { timeout: 10_000 }, () => {
  test('an error is its name, message and code on one line, never its stack', () => {
    const err = Object.assign(new Error('Not enough resources: pipeline quota of this session reached (20/20)'), { code: 40009 });
    const text = consoleText([err]);
    assert.equal(text, 'Error: Not enough resources: pipeline quota of this session reached (20/20) (code 40009)');
    assert.doesNotMatch(consoleText(['a\nb', { x: 1 }]), /\n/);
    assert.ok(consoleText(['x'.repeat(2000)]).length <= 501);
  });

  test('the calling package is the nearest frame under node_modules', () => {
    const stack = [
      'Error',
      '    at Console.log (/srv/ferry/src/gateway/kurento/library-console.ts:80:20)',
      '    at Reconnect.<anonymous> (/srv/ferry/node_modules/kurento-client/lib/KurentoClient.js:946:15)',
      '    at Reconnect.emit (node:events:524:28)',
    ].join('\n');
    assert.equal(callingLibrary(stack), 'kurento-client');
    assert.equal(callingLibrary('Error\n    at x (/srv/node_modules/@scope/pkg/index.js:1:1)'), '@scope/pkg');
    assert.equal(callingLibrary('Error\n    at x (/srv/ferry/src/a.ts:1:1)'), 'unknown');
  });

  test('console calls become logger lines; a repeated message is logged once per interval with the count left out; restore puts the console back', () => {
    const original = globalThis.console;
    const { log, lines } = captureLog();
    let now = 0;
    const restore = routeLibraryConsole(log, { intervalMs: 5000, now: () => now });
    try {
      for (let n = 0; n < 10; n++) {
        console.log('reconnect to server', n, 0, 'session-1');
        now += 400;
      }
      console.trace(Object.assign(new Error('request timeout'), { code: 40000 }));
      assert.notEqual(globalThis.console, original);
    } finally {
      restore();
    }
    assert.equal(globalThis.console, original, 'restored');
    const reconnects = lines.filter((l) => /^reconnect to server/.test(String(l.text)));
    assert.equal(reconnects.length, 1, 'ten calls in 4 s: one line');
    assert.equal(reconnects[0]!.level, 'info');
    assert.equal(reconnects[0]!.message, 'library console output');
    assert.equal(reconnects[0]!.method, 'log');
    const trace = lines.find((l) => l.method === 'trace');
    assert.equal(trace?.level, 'warn');
    assert.equal(trace?.text, 'Error: request timeout (code 40000)');

    // after the interval the next one is logged, saying how many were left out
    const again = captureLog();
    now = 0;
    const restore2 = routeLibraryConsole(again.log, { intervalMs: 5000, now: () => now });
    try {
      for (let n = 0; n < 4; n++) console.warn('Unknown object id', n);
      now = 5000;
      console.warn('Unknown object id', 99);
    } finally {
      restore2();
    }
    assert.deepEqual(again.lines.map((l) => l.suppressedSinceLastLine), [undefined, 3]);
  });
});
