import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseLocatedJson, LocatedJsonError } from '../../src/gateway/config/located-json';
import { parseSipConfig, loadSipConfig } from '../../src/gateway/config/sip-config-loader';
import { loadGatewayConfig, defaultSipConfigFile } from '../../src/gateway/config/gateway-config';
import { ConfigError } from '../../src/gateway/config/config-error';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('located JSON parser', () => {
  test('parses values and records the line of each path', { timeout: 30_000 }, () => {
    const r = parseLocatedJson('{\n "a": 1,\n "b": [\n  {"c": "x"},\n  true\n ]\n}');
    assert.deepEqual(r.value, { a: 1, b: [{ c: 'x' }, true] });
    assert.equal(r.lines.get('a'), 2);
    assert.equal(r.lines.get('b[0].c'), 4);
    assert.equal(r.lines.get('b[1]'), 5);
  });

  test('syntax errors name the line', { timeout: 30_000 }, () => {
    assert.throws(() => parseLocatedJson('{\n "a": 1\n "b": 2\n}'), (e: unknown) => e instanceof LocatedJsonError && e.line === 3);
    assert.throws(() => parseLocatedJson('{"a": 1, "a": 2}'), /duplicate key/);
    assert.throws(() => parseLocatedJson('{"a": "x\ny"}'), /unterminated/);
    assert.throws(() => parseLocatedJson('[1] 2'), /after the end/);
  });

  test('agrees with JSON.parse and never throws anything but LocatedJsonError under mutation (seeded fuzz)', { timeout: 30_000 }, () => {
    const sample = JSON.stringify({ domain: 'x.y', users: [{ user: 'a', password: 'p\u00e9"\\', n: -1.5e3 }], t: [true, false, null, {}] }, null, 2);
    let seed = 12345;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
    const alphabet = '{}[]",:\\ \n0123456789-+.eEtruefalsn\u00e9';
    for (let i = 0; i < 5000; i++) {
      const chars = sample.split('');
      for (let k = 0; k < 1 + rnd(4); k++) {
        const op = rnd(3);
        const at = rnd(chars.length);
        if (op === 0) chars.splice(at, 1);
        else if (op === 1) chars.splice(at, 0, alphabet[rnd(alphabet.length)]!);
        else chars[at] = alphabet[rnd(alphabet.length)]!;
      }
      const text = chars.join('');
      let expected: unknown;
      let ok = true;
      try {
        expected = JSON.parse(text);
      } catch {
        ok = false;
      }
      try {
        const got = parseLocatedJson(text);
        if (ok) assert.deepEqual(got.value, expected);
      } catch (err) {
        assert.ok(err instanceof LocatedJsonError, `unexpected ${String(err)} for ${JSON.stringify(text)}`);
        // JSON.parse accepts duplicate keys; we refuse them on purpose
        if (ok) assert.match(err.message, /duplicate key/);
      }
    }
  });
});

describe('sip-config', () => {
  test('the shipped sip-config/ferry.json is valid', { timeout: 30_000 }, () => {
    const c = loadSipConfig(defaultSipConfigFile());
    assert.equal(c.domain, 'ferry.local');
    assert.ok(c.users.some((u) => u.user === 'alice'));
    assert.ok(c.routes.length >= 1);
  });

  test('a wrong field names file, line and field', { timeout: 30_000 }, () => {
    const text = '{\n  "domain": "d",\n  "users": [\n    { "user": "a", "password": "p" },\n    { "user": "b", "pasword": "p" }\n  ]\n}\n';
    const problems = problemsOf(() => parseSipConfig(text, 'sip-config/ferry.json'));
    assert.ok(problems.includes('sip-config/ferry.json:5: users[1].pasword: unknown field (allowed: user, password, displayName, record)'), problems.join('\n'));
    assert.ok(problems.includes('sip-config/ferry.json:5: users[1].password: is required'), problems.join('\n'));
  });

  test('bad values are all reported together', { timeout: 30_000 }, () => {
    const text = [
      '{',
      '  "domain": "bad domain",',
      '  "trunks": [ { "name": "t", "address": "nohost", "transport": "sctp" } ],',
      '  "routes": [',
      '    { "match": "(", "to": "user" },',
      '    { "match": ".*", "to": "trunk:nope" }',
      '  ],',
      '  "maxExpires": -3',
      '}',
    ].join('\n');
    const problems = problemsOf(() => parseSipConfig(text, 'f.json'));
    const want = [/^f\.json:2: domain: /, /^f\.json:3: trunks\[0\]\.address: /, /^f\.json:3: trunks\[0\]\.transport: /, /^f\.json:5: routes\[0\]\.match: not a valid regular expression/, /^f\.json:6: routes\[1\]\.to: no trunk named "nope"/, /^f\.json:8: maxExpires: /];
    for (const w of want) assert.ok(problems.some((p) => w.test(p)), `missing ${w} in\n${problems.join('\n')}`);
  });

  test('syntax error names the line', { timeout: 30_000 }, () => {
    const problems = problemsOf(() => parseSipConfig('{\n "domain": "d",\n "users": [\n}', 'x.json'));
    assert.match(problems[0]!, /^x\.json:4: syntax: /);
  });

  test('routes: default is "dial a user"; rewrite and trunk targets parse', { timeout: 30_000 }, () => {
    const c = parseSipConfig('{"domain":"d","trunks":[{"name":"p","address":"127.0.0.1:5090"}],"routes":[{"match":"9(\\\\d+)","to":"trunk:p","rewrite":"$1"}]}', 'f');
    assert.deepEqual(c.routes[0]!.to, { kind: 'trunk', trunk: 'p' });
    assert.ok(c.routes[0]!.match.test('9123'));
    assert.ok(!c.routes[0]!.match.test('x9123'));
    const d = parseSipConfig('{"domain":"d"}', 'f');
    assert.deepEqual(d.routes[0]!.to, { kind: 'user' });
  });
});

describe('gateway environment', () => {
  test('defaults', { timeout: 30_000 }, () => {
    const c = loadGatewayConfig({});
    assert.deepEqual(c.sipControl, { host: '127.0.0.1', port: 9022, secret: 'cymru' });
    assert.equal(c.mediaUrl, 'ws://127.0.0.1:8888/kurento');
    assert.equal(c.http.port, 3000);
    assert.equal(c.redisUrl, undefined);
    assert.equal(c.leaseMs, 10000);
    assert.equal(c.mediaPingTimeoutMs, 15000);
  });

  test('FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS: 0 turns the watch off; below 500 it is refused', { timeout: 30_000 }, () => {
    assert.equal(loadGatewayConfig({ FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS: '0' }).mediaPingTimeoutMs, 0);
    assert.equal(loadGatewayConfig({ FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS: '3000' }).mediaPingTimeoutMs, 3000);
    const problems = problemsOf(() => loadGatewayConfig({ FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS: '200' }));
    assert.ok(problems.some((p) => p.startsWith('environment: FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS=200: must be 0')), problems.join('\n'));
  });

  test('bad variables and a bad sip-config file are reported together', { timeout: 30_000 }, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-cfg-'));
    const file = path.join(dir, 'ferry.json');
    writeFileSync(file, '{\n  "domain": "d",\n  "userz": []\n}\n');
    const problems = problemsOf(() => loadGatewayConfig({ FERRY_HTTP_PORT: 'x', FERRY_MEDIA_URL: 'http://a', FERRY_SIP_CONFIG: file }));
    assert.ok(problems.some((p) => p.startsWith('environment: FERRY_HTTP_PORT="x"')));
    assert.ok(problems.some((p) => p.startsWith('environment: FERRY_MEDIA_URL=')));
    // the list of allowed fields grows with the sections the file gains (webhooks, …)
    assert.ok(problems.some((p) => p.startsWith(`${file}:3: userz: unknown field (allowed: domain, users, trunks, routes, minExpires, maxExpires, `)), problems.join('\n'));
  });
});
