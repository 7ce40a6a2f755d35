/**
 * Outbound connection mode's settings (FERRY_SIP_REQUEST_HANDLER and friends): off when unset, the fixed and
 * web-callback forms, and every bad value an error naming its variable, also through loadSipSettings (what
 * `ferry sip` checks before anything listens).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_OUTBOUND_LIMITS, parseAppAddress, requestHandlerFromEnv } from '../../src/sip/control/request-handler-settings';
import { loadSipSettings } from '../../src/cli/sip-settings';

describe('outbound connection mode settings', { timeout: 10_000 }, () => {
  test('unset: off', () => {
    assert.equal(requestHandlerFromEnv({}), undefined);
    assert.equal(requestHandlerFromEnv({ FERRY_SIP_REQUEST_HANDLER: ' ' }), undefined);
    assert.equal(loadSipSettings({}).engine.requestHandler, undefined);
  });

  test('a fixed app address, every method, the default limits', () => {
    const s = requestHandlerFromEnv({ FERRY_SIP_REQUEST_HANDLER: 'tcp://10.0.0.7:4000' });
    assert.deepEqual(s?.target, { kind: 'connect', host: '10.0.0.7', port: 4000, transport: 'tcp' });
    assert.equal(s?.methods, '*');
    assert.equal(s?.connectTimeoutMs, DEFAULT_OUTBOUND_LIMITS.connectTimeoutMs);
    assert.equal(s?.idleMs, DEFAULT_OUTBOUND_LIMITS.idleMs);
    assert.deepEqual(requestHandlerFromEnv({ FERRY_SIP_REQUEST_HANDLER: 'tls://apps.example:4001' })?.target,
      { kind: 'connect', host: 'apps.example', port: 4001, transport: 'tls' });
  });

  test('a web callback, methods listed, POST, limits set', () => {
    const s = loadSipSettings({
      FERRY_SIP_REQUEST_HANDLER: 'https://router.example/route',
      FERRY_SIP_REQUEST_HANDLER_METHODS: 'invite, message',
      FERRY_SIP_REQUEST_HANDLER_HTTP_METHOD: 'post',
      FERRY_SIP_OUTBOUND_MAX_CONNECTIONS: '5',
      FERRY_SIP_OUTBOUND_IDLE_MS: '1000',
    }).engine.requestHandler;
    assert.deepEqual(s?.target, { kind: 'http', url: 'https://router.example/route', httpMethod: 'POST' });
    assert.deepEqual(s?.methods, new Set(['INVITE', 'MESSAGE']));
    assert.equal(s?.maxConnections, 5);
    assert.equal(s?.idleMs, 1000);
  });

  test('a route uri as the web callback gives it: host:port, transport, default port 9021', () => {
    assert.deepEqual(parseAppAddress('127.0.0.1:3001'), { host: '127.0.0.1', port: 3001, transport: 'tcp' });
    assert.deepEqual(parseAppAddress('app.svc:3001;transport=tls'), { host: 'app.svc', port: 3001, transport: 'tls' });
    assert.deepEqual(parseAppAddress('app.svc'), { host: 'app.svc', port: 9021, transport: 'tcp' });
    assert.deepEqual(parseAppAddress('[::1]:3001'), { host: '::1', port: 3001, transport: 'tcp' });
    assert.equal(parseAppAddress('app.svc:99999'), undefined);
    assert.equal(parseAppAddress('a b:1'), undefined);
  });

  const bad: [Record<string, string>, RegExp][] = [
    [{ FERRY_SIP_REQUEST_HANDLER: 'app.example:4000' }, /FERRY_SIP_REQUEST_HANDLER must be/],
    [{ FERRY_SIP_REQUEST_HANDLER: 'tcp://app.example:0' }, /FERRY_SIP_REQUEST_HANDLER must be/],
    [{ FERRY_SIP_REQUEST_HANDLER: 'http://' }, /FERRY_SIP_REQUEST_HANDLER=http:\/\/ is not a valid URL/],
    [{ FERRY_SIP_REQUEST_HANDLER: 'http://x/', FERRY_SIP_REQUEST_HANDLER_HTTP_METHOD: 'PUT' }, /FERRY_SIP_REQUEST_HANDLER_HTTP_METHOD/],
    [{ FERRY_SIP_REQUEST_HANDLER: 'tcp://x:1', FERRY_SIP_REQUEST_HANDLER_METHODS: 'INVITE;BYE' }, /FERRY_SIP_REQUEST_HANDLER_METHODS/],
    [{ FERRY_SIP_REQUEST_HANDLER: 'tcp://x:1', FERRY_SIP_OUTBOUND_CONNECT_TIMEOUT_MS: '0' }, /FERRY_SIP_OUTBOUND_CONNECT_TIMEOUT_MS/],
    [{ FERRY_SIP_REQUEST_HANDLER: 'tcp://x:1', FERRY_SIP_OUTBOUND_AUTH_TIMEOUT_MS: 'soon' }, /FERRY_SIP_OUTBOUND_AUTH_TIMEOUT_MS/],
    [{ FERRY_SIP_REQUEST_HANDLER: 'tcp://x:1', FERRY_SIP_OUTBOUND_MAX_CONNECTIONS: '0' }, /FERRY_SIP_OUTBOUND_MAX_CONNECTIONS/],
    [{ FERRY_SIP_REQUEST_HANDLER: 'tcp://x:1', FERRY_SIP_OUTBOUND_IDLE_MS: '-5' }, /FERRY_SIP_OUTBOUND_IDLE_MS/],
    [{ FERRY_SIP_REQUEST_HANDLER: 'http://x/', FERRY_SIP_REQUEST_HANDLER_TIMEOUT_MS: '0' }, /FERRY_SIP_REQUEST_HANDLER_TIMEOUT_MS/],
  ];
  for (const [env, message] of bad) {
    test(`refused: ${JSON.stringify(env)}`, () => {
      assert.throws(() => requestHandlerFromEnv(env), message);
      assert.throws(() => loadSipSettings(env), message);
    });
  }
});
