import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { callEventTypes } from '../../src/gateway/events/call-events';
import { parseTypesParam } from '../../src/gateway/events/event-stream';
import { JsonValue } from '../../src/gateway/config/located-json';
import { parseWebhookReceivers } from '../../src/gateway/webhooks/webhook-config';
import { verifyWebhook, webhookSignature } from '../../src/gateway/webhooks/webhook-signature';
import { rng } from '../helpers/seeded-random';

/**
 * Seeded fuzz of the webhook and event-stream parsers: random and mutated input never throws, never
 * accepts what it must not (a mutated signature, an unknown type), and the valid controls pass.
 */
const SECRET = 'fuzz-secret-0123456789';

function randomString(r: () => number, max: number): string {
  const alphabet = 'abc.,= v1:0123456789ef\u0000\u00ff\ud83d\ude00"\\\r\n%';
  let s = '';
  const n = Math.floor(r() * max);
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(r() * alphabet.length)];
  return s;
}

function randomJson(r: () => number, depth = 0): JsonValue {
  const k = Math.floor(r() * (depth > 2 ? 4 : 7));
  if (k === 0) return null;
  if (k === 1) return r() < 0.5;
  if (k === 2) return Math.floor((r() - 0.5) * 1e7);
  if (k === 3) return r() < 0.3 ? 'https://h.example/x' : randomString(r, 30);
  if (k === 4) return Array.from({ length: Math.floor(r() * 4) }, () => randomJson(r, depth + 1));
  const keys = ['url', 'secret', 'events', 'name', 'timeoutMs', 'retryInitialMs', 'retryMaxMs', 'maxAgeSeconds', 'maxQueue', 'x'];
  const o: { [key: string]: JsonValue } = {};
  for (const key of keys) if (r() < 0.5) o[key] = key === 'events' && r() < 0.5 ? [callEventTypes[Math.floor(r() * callEventTypes.length)]!, randomString(r, 12)] : randomJson(r, depth + 1);
  return o;
}

describe('webhook parsers under fuzz', { timeout: 20_000 }, () => {
  test('signature check: mutated headers and bodies are refused, never thrown on', { timeout: 10_000 }, () => {
    const r = rng(12);
    const nowMs = 1_800_000_000_000;
    const ts = String(Math.floor(nowMs / 1000));
    const body = '{"id":"e","type":"call.ended","data":{}}';
    const signature = webhookSignature(SECRET, Number(ts), body);
    assert.deepEqual(verifyWebhook({ secret: SECRET, body, timestamp: ts, signature, nowMs }), { ok: true }, 'positive control');
    for (let i = 0; i < 3000; i++) {
      const pick = r();
      const mutate = (s: string): string => {
        const at = Math.floor(r() * (s.length + 1));
        return s.slice(0, at) + randomString(r, 3) + s.slice(at + (r() < 0.5 ? 1 : 0));
      };
      const args = {
        secret: SECRET,
        body: pick < 0.33 ? mutate(body) : body,
        timestamp: pick >= 0.33 && pick < 0.5 ? mutate(ts) : ts,
        signature: pick >= 0.5 ? (r() < 0.5 ? mutate(signature) : randomString(r, 200)) : signature,
        nowMs,
      };
      const unchanged = args.body === body && args.timestamp === ts && args.signature.split(',').some((s) => s.trim() === signature);
      const result = verifyWebhook(args);
      assert.equal(result.ok, unchanged, JSON.stringify(args));
    }
  });

  test('receiver config: random values give problems or receivers, never a throw', { timeout: 10_000 }, () => {
    const r = rng(34);
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      const value = r() < 0.9 ? Array.from({ length: Math.floor(r() * 3) + 1 }, () => randomJson(r)) : randomJson(r);
      const problems: string[] = [];
      const receivers = parseWebhookReceivers(value, (path, what) => problems.push(`${path}: ${what}`));
      for (const w of receivers) {
        assert.match(w.url, /^https?:\/\//);
        assert.ok(w.secret.length >= 16);
        assert.ok(w.events === undefined || w.events.every((e) => callEventTypes.includes(e)));
      }
      if (problems.length) refused++;
      assert.ok(problems.every((p) => /^webhooks/.test(p)));
    }
    // positive control: a valid receiver among them is accepted
    const ok = parseWebhookReceivers([{ url: 'https://h.example/x', secret: SECRET }], () => assert.fail('no problem expected'));
    assert.equal(ok.length, 1);
    assert.ok(refused > 0);
  });

  test('?types=: random values are refused with a bounded message or give known types only', { timeout: 10_000 }, () => {
    const r = rng(56);
    assert.deepEqual([...(parseTypesParam('call.ended, call.answered') as { types: ReadonlySet<string> }).types!], ['call.ended', 'call.answered']);
    for (let i = 0; i < 3000; i++) {
      const value = r() < 0.3 ? `${callEventTypes[Math.floor(r() * callEventTypes.length)]},${randomString(r, 20)}` : randomString(r, r() < 0.1 ? 5000 : 60);
      const p = parseTypesParam(value);
      if (p.ok) assert.ok([...p.types!].every((t) => callEventTypes.includes(t)));
      else assert.ok(p.error.length < 300, p.error);
    }
  });
});
