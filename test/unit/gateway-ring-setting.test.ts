import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadGatewayConfig } from '../../src/gateway/config/gateway-config';

/** FERRY_RING (docs/configuration.md): how a call reaches a user with several registrations */
test('FERRY_RING: all by default, all or newest when set (any case, spaces trimmed)', { timeout: 5000 }, () => {
  assert.equal(loadGatewayConfig({}).ring, 'all');
  assert.equal(loadGatewayConfig({ FERRY_RING: '' }).ring, 'all');
  assert.equal(loadGatewayConfig({ FERRY_RING: 'newest' }).ring, 'newest');
  assert.equal(loadGatewayConfig({ FERRY_RING: ' Newest ' }).ring, 'newest');
  assert.equal(loadGatewayConfig({ FERRY_RING: 'ALL' }).ring, 'all');
});

test('FERRY_RING: anything else stops the start with a clear error naming the variable and the values it takes', { timeout: 5000 }, () => {
  assert.throws(() => loadGatewayConfig({ FERRY_RING: 'parallel' }), /FERRY_RING="parallel": must be all or newest/);
  assert.throws(() => loadGatewayConfig({ FERRY_RING: 'sequential' }), /FERRY_RING="sequential": must be all or newest/);
});
