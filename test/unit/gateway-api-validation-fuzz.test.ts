/**
 * Seeded fuzz of the REST API's body and query validation (src/gateway/api/api-validation.ts):
 * random objects built from valid bodies with fields dropped, added, retyped and mangled go through
 * every parser, which either accepts (and then the result holds only checked values) or throws an
 * ApiError 400 whose message starts with the field it names; nothing else is ever thrown.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../src/gateway/api/api-error';
import { parseDtmf, parseHold, parseListQuery, parseOriginate, parseTransfer } from '../../src/gateway/api/api-validation';
import { rng } from '../helpers/seeded-random';

const VALID: Record<string, unknown>[] = [
  { a: 'alice', b: '95550150', from: '5550100', ringTimeoutMs: 20000, record: true, tags: { ticket: 'T-42', queue: 'sales' } },
  { party: 'callee' },
  { digits: '12#', party: 'caller', durationMs: 100 },
  { target: '95550199', keep: 'callee' },
];
const KEYS = ['a', 'b', 'from', 'ringTimeoutMs', 'record', 'tags', 'party', 'digits', 'durationMs', 'target', 'keep', '__proto__', 'constructor', 'x'.repeat(300), ''];

function value(r: () => number, depth = 0): unknown {
  const pick = Math.floor(r() * 14);
  switch (pick) {
    case 0: return null;
    case 1: return r() < 0.5;
    case 2: return Math.floor(r() * 1e6) - 5e5;
    case 3: return r() * 1e9;
    case 4: return Number.NaN;
    case 5: return '';
    case 6: return 'alice';
    case 7: return String.fromCharCode(...Array.from({ length: Math.floor(r() * 80) }, () => Math.floor(r() * 0x3000)));
    case 8: return 'é#*<>"\u0000\r\n'.repeat(Math.floor(r() * 10));
    case 9: return depth < 3 ? Array.from({ length: Math.floor(r() * 4) }, () => value(r, depth + 1)) : [];
    case 10: return depth < 3 ? Object.fromEntries(Array.from({ length: Math.floor(r() * 25) }, (_v, i) => [`k${i}${r() < 0.2 ? ' bad' : ''}`, value(r, depth + 1)])) : {};
    case 11: return 'callee';
    case 12: return '1'.repeat(Math.floor(r() * 70));
    default: return 1000 + Math.floor(r() * 400000);
  }
}

function mutate(base: Record<string, unknown>, r: () => number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    const op = r();
    const keys = Object.keys(out);
    if (op < 0.3 && keys.length) delete out[keys[Math.floor(r() * keys.length)]!];
    else if (op < 0.7 && keys.length) out[keys[Math.floor(r() * keys.length)]!] = value(r);
    else Object.defineProperty(out, KEYS[Math.floor(r() * KEYS.length)]!, { value: value(r), enumerable: true, configurable: true, writable: true });
  }
  return out;
}

function expectOnly400(fn: () => unknown, what: string): 'ok' | 'refused' {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (!(e instanceof ApiError)) assert.fail(`${what}: threw ${String(e)}`);
    assert.equal(e.status, 400, what);
    const field = String(e.extra.field);
    assert.ok(e.message.startsWith(`${field}: `), `${what}: message ${e.message} names ${field}`);
    return 'refused';
  }
}

describe('REST API validation fuzz', () => {
  test('20 000 mutated bodies: accepted with checked values, or 400 naming the field', { timeout: 30_000 }, () => {
    const r = rng(0x12a9);
    const parsers = [parseOriginate, parseHold, parseDtmf, parseTransfer] as const;
    const counts = { ok: 0, refused: 0 };
    for (let i = 0; i < 20_000; i++) {
      const which = i % 4;
      const body = mutate(VALID[which]!, r);
      const result = expectOnly400(() => {
        const parsed = parsers[which]!(body);
        if (which === 0) {
          const o = parsed as ReturnType<typeof parseOriginate>;
          assert.match(o.a, /^[A-Za-z0-9+*#._-]{1,64}$/);
          assert.match(o.b, /^[A-Za-z0-9+*#._-]{1,64}$/);
          for (const v of Object.values(o.tags ?? {})) assert.equal(typeof v, 'string');
        }
        if (which === 2) assert.match((parsed as ReturnType<typeof parseDtmf>).digits, /^[0-9*#A-D]{1,32}$/);
      }, `iteration ${i} ${JSON.stringify(body).slice(0, 200)}`);
      counts[result]++;
    }
    // both outcomes happen (the mutations are neither all harmless nor all fatal)
    assert.ok(counts.ok > 1000 && counts.refused > 1000, JSON.stringify(counts));
  });

  test('5 000 random query strings: parsed or 400 naming the parameter', { timeout: 30_000 }, () => {
    const r = rng(0x9e3);
    const names = ['state', 'party', 'limit', 'offset', 'cursor', 'sort', ''];
    const values = ['all', 'answered,ended', 'nope', '0', '1', '500', '501', '-1', '1e3', 'MTAwMDpjYWxsLTA', '%00', 'alice', ''];
    let ok = 0;
    for (let i = 0; i < 5_000; i++) {
      const q = new URLSearchParams();
      const n = Math.floor(r() * 4);
      for (let k = 0; k < n; k++) q.append(names[Math.floor(r() * names.length)]!, r() < 0.8 ? values[Math.floor(r() * values.length)]! : String(value(r)));
      if (expectOnly400(() => parseListQuery(q), `query ${q.toString().slice(0, 200)}`) === 'ok') ok++;
    }
    assert.ok(ok > 100 && ok < 5000, `accepted ${ok}`);
  });
});
