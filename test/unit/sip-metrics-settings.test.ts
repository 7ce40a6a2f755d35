/**
 * FERRY_SIP_METRICS_PORT / FERRY_SIP_METRICS_HOST as ferry sip reads them (src/sip/metrics/sip-metrics-settings.ts):
 * unset is off, the host defaults to loopback, a non-loopback host is marked exposed (logged once at start),
 * and every bad value is an error naming its variable, also through loadSipSettings (what ferry start checks).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sipMetricsFromEnv } from '../../src/sip/metrics/sip-metrics-settings';
import { loadSipSettings } from '../../src/cli/sip-settings';

describe('FERRY_SIP_METRICS_PORT and FERRY_SIP_METRICS_HOST', { timeout: 10_000 }, () => {
  test('unset or empty: no metrics port', () => {
    assert.equal(sipMetricsFromEnv({}), undefined);
    assert.equal(sipMetricsFromEnv({ FERRY_SIP_METRICS_PORT: '' }), undefined);
    assert.equal(loadSipSettings({}).engine.metrics, undefined);
  });

  test('a port alone listens on 127.0.0.1, not exposed; an explicit host is taken as given and marked exposed unless loopback', () => {
    assert.deepEqual(sipMetricsFromEnv({ FERRY_SIP_METRICS_PORT: '9464' }), { port: 9464, host: '127.0.0.1', exposed: false });
    assert.deepEqual(sipMetricsFromEnv({ FERRY_SIP_METRICS_PORT: '0' }), { port: 0, host: '127.0.0.1', exposed: false });
    assert.deepEqual(sipMetricsFromEnv({ FERRY_SIP_METRICS_PORT: '9464', FERRY_SIP_METRICS_HOST: '::1' }), { port: 9464, host: '::1', exposed: false });
    assert.deepEqual(sipMetricsFromEnv({ FERRY_SIP_METRICS_PORT: '9464', FERRY_SIP_METRICS_HOST: 'localhost' }), { port: 9464, host: 'localhost', exposed: false });
    assert.deepEqual(sipMetricsFromEnv({ FERRY_SIP_METRICS_PORT: '9464', FERRY_SIP_METRICS_HOST: '10.0.0.5' }), { port: 9464, host: '10.0.0.5', exposed: true });
    assert.deepEqual(sipMetricsFromEnv({ FERRY_SIP_METRICS_PORT: '9464', FERRY_SIP_METRICS_HOST: '0.0.0.0' }), { port: 9464, host: '0.0.0.0', exposed: true });
    assert.deepEqual(sipMetricsFromEnv({ FERRY_SIP_METRICS_PORT: '9464', FERRY_SIP_METRICS_HOST: '[2001:db8::1]' }), { port: 9464, host: '2001:db8::1', exposed: true });
    assert.deepEqual(loadSipSettings({ FERRY_SIP_METRICS_PORT: '9464' }).engine.metrics, { port: 9464, host: '127.0.0.1', exposed: false });
  });

  test('bad values name their variable', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ FERRY_SIP_METRICS_PORT: '65536' }, /FERRY_SIP_METRICS_PORT="65536" is not a port/],
      [{ FERRY_SIP_METRICS_PORT: '-1' }, /FERRY_SIP_METRICS_PORT="-1" is not a port/],
      [{ FERRY_SIP_METRICS_PORT: '94 64' }, /FERRY_SIP_METRICS_PORT="94 64" is not a port/],
      [{ FERRY_SIP_METRICS_PORT: '9464', FERRY_SIP_METRICS_HOST: 'prometheus.internal' }, /FERRY_SIP_METRICS_HOST="prometheus\.internal" is not an IP address/],
      [{ FERRY_SIP_METRICS_HOST: '10.0.0.5' }, /FERRY_SIP_METRICS_HOST="10\.0\.0\.5" is set but FERRY_SIP_METRICS_PORT is not/],
    ];
    for (const [env, message] of cases) {
      assert.throws(() => sipMetricsFromEnv(env), message, JSON.stringify(env));
      assert.throws(() => loadSipSettings(env), message, `loadSipSettings ${JSON.stringify(env)}`);
    }
  });
});
