import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../src/gateway/config/config-error';
import { parseSipConfig } from '../../src/gateway/config/sip-config-loader';
import { DEFAULT_REPLAY_WINDOW_S, verifyWebhook, webhookSignature } from '../../src/gateway/webhooks/webhook-signature';

const base = { domain: 'ferry.local' };
const SECRET = 'receiver-secret-0123456789';

function problems(config: unknown): string[] {
  try {
    parseSipConfig(JSON.stringify(config, null, 2), 'ferry.json');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return (err as ConfigError).problems;
  }
  return [];
}

describe('sip-config webhooks', { timeout: 5000 }, () => {
  test('a receiver gets its defaults; the name is the URL host', { timeout: 2000 }, () => {
    const c = parseSipConfig(JSON.stringify({ ...base, webhooks: [{ url: 'https://crm.example.com:8443/hooks', secret: SECRET, events: ['call.ended'] }] }), 'f.json');
    assert.deepEqual(c.webhooks, [
      { name: 'crm.example.com_8443', url: 'https://crm.example.com:8443/hooks', secret: SECRET, events: ['call.ended'], timeoutMs: 5000, retryInitialMs: 1000, retryMaxMs: 60000, maxAgeMs: 86_400_000, maxQueue: 10000 },
    ]);
    assert.equal(parseSipConfig(JSON.stringify(base), 'f.json').webhooks, undefined);
  });

  test('every bad field is named with its line', { timeout: 2000 }, () => {
    const got = problems({
      ...base,
      webhooks: [
        { url: 'ftp://x/', secret: 'short', events: ['call.rang'], timeoutMs: 0, colour: 'red' },
        { secret: SECRET },
        { url: 'http://u:p@h/', secret: SECRET },
        { url: 'http://same/', secret: SECRET },
        { url: 'http://same/other', secret: SECRET, retryInitialMs: 5000, retryMaxMs: 1000 },
      ],
    });
    const expect = [
      /webhooks\[0\]\.colour: unknown field/,
      /webhooks\[0\]\.url: "ftp:\/\/x\/" is not an http:\/\/ or https:\/\/ URL/,
      /webhooks\[0\]\.secret: must be a string of at least 16 characters/,
      /webhooks\[0\]\.events\[0\]: "call\.rang" is not an event type/,
      /webhooks\[0\]\.timeoutMs: must be an integer between 100 and 30000/,
      /webhooks\[1\]\.url: is required/,
      /webhooks\[2\]\.url: must not carry credentials/,
      /webhooks\[4\]\.retryMaxMs: must not be less than retryInitialMs/,
      /webhooks\[4\]\.name: two receivers named "same"/,
    ];
    for (const re of expect) assert.ok(got.some((p) => re.test(p)), `${re} in:\n${got.join('\n')}`);
    assert.ok(got.every((p) => /^ferry\.json:\d+: webhooks/.test(p)), got.join('\n'));
    assert.match(problems({ ...base, webhooks: {} })[0]!, /webhooks: must be a list/);
    assert.match(problems({ ...base, webhooks: Array.from({ length: 17 }, (_, i) => ({ name: `r${i}`, url: 'http://h/', secret: SECRET })) })[0]!, /at most 16 receivers/);
  });
});

describe('webhook signatures', { timeout: 5000 }, () => {
  const body = '{"id":"e1","type":"call.ended"}';
  const now = 1_800_000_000_000;
  const ts = Math.floor(now / 1000);

  test('a receiver accepts the signature of this body and timestamp only', { timeout: 2000 }, () => {
    const signature = webhookSignature(SECRET, ts, body);
    assert.match(signature, /^v1=[0-9a-f]{64}$/);
    assert.deepEqual(verifyWebhook({ secret: SECRET, body, timestamp: String(ts), signature, nowMs: now }), { ok: true });
    // several signatures (e.g. during a secret rotation): one match is enough
    assert.deepEqual(verifyWebhook({ secret: SECRET, body, timestamp: String(ts), signature: `v1=${'0'.repeat(64)}, ${signature}`, nowMs: now }), { ok: true });
    const bad = (over: Partial<Parameters<typeof verifyWebhook>[0]>): string | undefined => {
      const r = verifyWebhook({ secret: SECRET, body, timestamp: String(ts), signature, nowMs: now, ...over });
      return r.ok ? undefined : r.problem;
    };
    assert.equal(bad({ body: body.replace('ended', 'answered') }), 'bad-signature');
    assert.equal(bad({ secret: 'another-secret-0123456789' }), 'bad-signature');
    assert.equal(bad({ timestamp: String(ts + 1) }), 'bad-signature');
    assert.equal(bad({ nowMs: now + (DEFAULT_REPLAY_WINDOW_S + 1) * 1000 }), 'stale-timestamp');
    assert.equal(bad({ nowMs: now - (DEFAULT_REPLAY_WINDOW_S + 1) * 1000 }), 'stale-timestamp');
    assert.equal(bad({ nowMs: now + DEFAULT_REPLAY_WINDOW_S * 1000 }), undefined);
    assert.equal(bad({ timestamp: undefined }), 'no-timestamp');
    assert.equal(bad({ timestamp: '1e9' }), 'no-timestamp');
    assert.equal(bad({ signature: undefined }), 'no-signature');
    assert.equal(bad({ signature: 'v1=abc' }), 'bad-signature');
  });
});
