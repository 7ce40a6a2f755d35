import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { loadSipConfig } from '../../src/gateway/config/sip-config-loader';

/**
 * docker-compose.yml cannot be run here (no Docker engine): parse it and check the production
 * shape instead — real drachtio-server, Kurento Media Server, Redis and the ferry gateway, with
 * kms/ and sip-config/ mounted and the gateway pointed at the others.
 */
const root = path.join(__dirname, '..', '..');

type Service = {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, unknown>;
  network_mode?: string;
};

describe('docker-compose.yml', () => {
  const doc = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { strict: true, uniqueKeys: true }) as { services: Record<string, Service> };
  const s = doc.services;

  test('has the four services of the production shape', { timeout: 30_000 }, () => {
    assert.deepEqual(Object.keys(s).sort(), ['drachtio', 'gateway', 'kms', 'redis']);
    assert.match(s.drachtio!.image!, /^drachtio\/drachtio-server:/);
    assert.match(s.kms!.image!, /^kurento\/kurento-media-server:7\./);
    assert.match(s.redis!.image!, /^redis:/);
    for (const svc of Object.values(s)) assert.ok(svc.image && !svc.image.endsWith(':latest'), 'images are pinned');
  });

  test('every mounted file exists in the repository (kms/ and sip-config/)', { timeout: 30_000 }, () => {
    const mounts = Object.values(s).flatMap((svc) => svc.volumes ?? []);
    assert.ok(mounts.some((m) => m.startsWith('./kms/')), 'kms/ mounted');
    assert.ok(mounts.some((m) => m.startsWith('./sip-config')), 'sip-config/ mounted');
    for (const m of mounts) {
      const src = m.split(':')[0]!;
      assert.ok(existsSync(path.join(root, src)), `${src} exists`);
    }
  });

  test('the gateway is pointed at drachtio, KMS and Redis, and its sip-config is valid', { timeout: 30_000 }, () => {
    const env = s.gateway!.environment!;
    assert.equal(env.FERRY_SIP_CONTROL_URL, '127.0.0.1:9022');
    assert.equal(env.FERRY_MEDIA_URL, 'ws://127.0.0.1:8888/kurento');
    assert.match(env.REDIS_URL!, /^redis:\/\//);
    assert.deepEqual(s.gateway!.command, ['node', 'bin/ferry', 'gateway']);
    assert.deepEqual(Object.keys(s.gateway!.depends_on!).sort(), ['drachtio', 'kms', 'redis']);
    const xml = readFileSync(path.join(root, 'sip-config', 'drachtio.conf.xml'), 'utf8');
    assert.match(xml, /<admin port="9022" secret="cymru">/, 'drachtio admin port and secret match the gateway');
    assert.equal(JSON.parse(readFileSync(path.join(root, 'kms', 'kurento.conf.json'), 'utf8')).mediaServer.net.websocket.port, 8888);
    loadSipConfig(path.join(root, env.FERRY_SIP_CONFIG!.replace(/^\/app\//, '')));
  });

  test('a broken compose file is refused by the parser (the check can fail)', { timeout: 30_000 }, () => {
    assert.throws(() => parse('services:\n  a:\n    image: x\n  a:\n    image: y\n', { uniqueKeys: true }));
    assert.throws(() => parse('services:\n  a: [\n', { strict: true }));
  });
});
