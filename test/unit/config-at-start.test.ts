import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { envPort } from '../../src/common/env';
import { loadSipSettings } from '../../src/cli/sip-settings';
import { loadMediaConfig } from '../../src/media/server/media-config';
import { loadGatewayConfig } from '../../src/gateway/config/gateway-config';

/** Every setting is read by a loader at start-up: a typo or an out-of-range port fails there, naming the variable. */

const ferry = path.join(__dirname, '..', '..', 'bin', 'ferry');

test('envPort: 0..65535 accepted, 99999 / -1 / 5060x refused naming the variable', { timeout: 5_000 }, () => {
  assert.equal(envPort('P', 5060, {}), 5060);
  assert.equal(envPort('P', 5060, { P: '0' }), 0);
  assert.equal(envPort('P', 5060, { P: '65535' }), 65535);
  for (const bad of ['99999', '65536', '-1', '5060x', '1.5', ' ']) {
    assert.throws(() => envPort('FERRY_SIP_PORT', 5060, { FERRY_SIP_PORT: bad }), /FERRY_SIP_PORT=.* is not a port: use 0\.\.65535/, bad);
  }
});

test('ferry sip settings: every port checked, the defaults as documented', { timeout: 5_000 }, () => {
  const ok = loadSipSettings({});
  assert.equal(ok.engine.sipPort, 5060);
  assert.equal(ok.engine.wsPort, 8088);
  assert.equal(ok.engine.controlPort, 9022);
  assert.equal(ok.statsIntervalMs, 0);
  for (const name of ['FERRY_SIP_PORT', 'FERRY_SIP_WS_PORT', 'FERRY_SIP_CONTROL_PORT']) {
    assert.throws(() => loadSipSettings({ [name]: '99999' }), new RegExp(`${name}="99999" is not a port`));
  }
  assert.throws(() => loadSipSettings({ FERRY_SIP_T1_MS: 'fast' }), /FERRY_SIP_T1_MS/);
});

test('ferry media config: ICE addresses, ports, orphan TTL and lag window are read at load, not at the first call', { timeout: 5_000 }, () => {
  const config = loadMediaConfig({}, { FERRY_MEDIA_ICE_ADDRESSES: '10.1.2.3', FERRY_MEDIA_ORPHAN_TTL_MS: '1234', FERRY_MEDIA_LAG_WINDOW_MS: '777' });
  assert.deepEqual(config.ice.addresses, ['10.1.2.3']);
  assert.equal(config.orphanTtlMs, 1234);
  assert.equal(config.lagWindowMs, 777);
  assert.deepEqual(loadMediaConfig({}, { FERRY_MEDIA_RTP_HOST: '10.9.9.9' }).ice.addresses, ['10.9.9.9'], 'the RTP address is the default ICE address');
  assert.throws(() => loadMediaConfig({}, { FERRY_MEDIA_ICE_ADDRESSES: 'localhost' }), /FERRY_MEDIA_ICE_ADDRESSES: "localhost" is not an IPv4 address/);
  assert.throws(() => loadMediaConfig({}, { FERRY_MEDIA_PORT: '70000' }), /FERRY_MEDIA_PORT="70000" is not a port/);
  assert.throws(() => loadMediaConfig({}, { FERRY_MEDIA_RTP_PORT_MAX: '99999' }), /FERRY_MEDIA_RTP_PORT_MAX="99999" is not a port/);
  assert.throws(() => loadMediaConfig({}, { FERRY_MEDIA_ORPHAN_TTL_MS: 'soon' }), /FERRY_MEDIA_ORPHAN_TTL_MS/);
});

test('gateway config: FERRY_SIP_CONTROL_URL with port 99999 is refused', { timeout: 5_000 }, () => {
  assert.throws(() => loadGatewayConfig({ FERRY_SIP_CONTROL_URL: '127.0.0.1:99999' }), /FERRY_SIP_CONTROL_URL="127\.0\.0\.1:99999": the port must be between 1 and 65535/);
  assert.equal(loadGatewayConfig({ FERRY_SIP_CONTROL_URL: '127.0.0.1:9022' }).sipControl.port, 9022, 'positive control: a valid port loads');
});

for (const [part, env, message] of [
  ['sip', { FERRY_SIP_PORT: '99999' }, /^ferry sip: refusing to start: environment variable FERRY_SIP_PORT="99999" is not a port/],
  ['media', { FERRY_MEDIA_ICE_ADDRESSES: 'not-an-address', FERRY_MEDIA_PORT: '0' }, /^ferry media: .*FERRY_MEDIA_ICE_ADDRESSES: "not-an-address" is not an IPv4 address/],
  ['start', { FERRY_SIP_PORT: '99999' }, /^ferry start: refusing to start: environment variable FERRY_SIP_PORT="99999" is not a port/],
  ['start', { FERRY_MEDIA_ICE_ADDRESSES: 'bad', FERRY_STORE: 'memory' }, /^ferry start: refusing to start: .*FERRY_MEDIA_ICE_ADDRESSES/],
  ['start', { FERRY_SHUTDOWN_WATCHDOG_MS: 'soon', FERRY_STORE: 'memory' }, /^ferry start: refusing to start: environment variable FERRY_SHUTDOWN_WATCHDOG_MS="soon" is not a non-negative integer/],
] as const) {
  test(`ferry ${part} with ${JSON.stringify(env)} exits 1 at start-up with one line naming the variable`, { timeout: 20_000 }, () => {
    const r = spawnSync(process.execPath, [ferry, part], { encoding: 'utf8', env: { ...process.env, ...env, FERRY_LOG_FORMAT: 'json' }, timeout: 15_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stdout, /ready/);
    assert.doesNotMatch(r.stderr, /restarting/);
  });
}
