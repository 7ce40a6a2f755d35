import { Side } from '../kurento/call-media';
import { CallState } from '../state/call-record';
import { badField } from './api-error';

/** `POST /api/calls` */
export interface OriginateRequest {
  /** party A, rung first: a user name (its registration) or a number the dial plan routes */
  a: string;
  /** party B, rung once A answered */
  b: string;
  /** the caller id B sees (user part); default: party A's name */
  from?: string;
  ringTimeoutMs?: number;
  record?: boolean;
  tags?: Record<string, string>;
}

export const RING_TIMEOUT_MIN_MS = 1000;
export const RING_TIMEOUT_MAX_MS = 300_000;
export const MAX_TAGS = 20;
const PARTY = /^[A-Za-z0-9+*#._-]{1,64}$/;
const TAG_KEY = /^[A-Za-z0-9_.:-]{1,64}$/;
const TAG_VALUE_MAX = 256;

function only(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(body)) if (!allowed.includes(k)) throw badField(k, `unknown field (allowed: ${allowed.join(', ')})`);
}

function party(body: Record<string, unknown>, field: string, required: boolean): string | undefined {
  const v = body[field];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || !PARTY.test(v)) throw badField(field, 'required: a user name or number (1-64 of A-Z a-z 0-9 + * # . _ -)');
  return v;
}

export function parseOriginate(body: Record<string, unknown>): OriginateRequest {
  only(body, ['a', 'b', 'from', 'ringTimeoutMs', 'record', 'tags']);
  const a = party(body, 'a', true)!;
  const b = party(body, 'b', true)!;
  const from = party(body, 'from', false);
  const out: OriginateRequest = { a, b, ...(from ? { from } : {}) };
  if (body.ringTimeoutMs !== undefined) {
    const t = body.ringTimeoutMs;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < RING_TIMEOUT_MIN_MS || t > RING_TIMEOUT_MAX_MS) {
      throw badField('ringTimeoutMs', `an integer from ${RING_TIMEOUT_MIN_MS} to ${RING_TIMEOUT_MAX_MS}`);
    }
    out.ringTimeoutMs = t;
  }
  if (body.record !== undefined) {
    if (typeof body.record !== 'boolean') throw badField('record', 'true or false');
    out.record = body.record;
  }
  if (body.tags !== undefined) {
    const tags = body.tags;
    if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) throw badField('tags', 'an object of string values');
    const entries = Object.entries(tags as Record<string, unknown>);
    if (entries.length > MAX_TAGS) throw badField('tags', `at most ${MAX_TAGS} tags`);
    for (const [k, v] of entries) {
      if (!TAG_KEY.test(k)) throw badField(`tags.${k.slice(0, 64)}`, 'tag names are 1-64 of A-Z a-z 0-9 _ . : -');
      if (typeof v !== 'string' || v.length > TAG_VALUE_MAX) throw badField(`tags.${k}`, `a string of at most ${TAG_VALUE_MAX} characters`);
    }
    out.tags = Object.fromEntries(entries) as Record<string, string>;
  }
  return out;
}

export type PartyChoice = Side | 'both';

/** `/hold`, `/resume`: `{ party?: 'caller' | 'callee' | 'both' }`, default both */
export function parseHold(body: Record<string, unknown>): Side[] {
  only(body, ['party']);
  const p = body.party ?? 'both';
  if (p !== 'caller' && p !== 'callee' && p !== 'both') throw badField('party', "one of 'caller', 'callee', 'both'");
  return p === 'both' ? ['caller', 'callee'] : [p];
}

export const DTMF_DIGITS = /^[0-9*#A-Da-d]{1,32}$/;
export const DTMF_DURATION_MIN_MS = 40;
export const DTMF_DURATION_MAX_MS = 2000;

export interface DtmfRequest {
  party: Side;
  digits: string;
  durationMs: number;
}

/** `/dtmf`: `{ digits, party?: 'caller' | 'callee' (default callee), durationMs? (default 160) }` */
export function parseDtmf(body: Record<string, unknown>): DtmfRequest {
  only(body, ['digits', 'party', 'durationMs']);
  if (typeof body.digits !== 'string' || !DTMF_DIGITS.test(body.digits)) throw badField('digits', 'required: 1-32 of 0-9 * # A-D');
  const p = body.party ?? 'callee';
  if (p !== 'caller' && p !== 'callee') throw badField('party', "one of 'caller', 'callee'");
  const d = body.durationMs ?? 160;
  if (typeof d !== 'number' || !Number.isInteger(d) || d < DTMF_DURATION_MIN_MS || d > DTMF_DURATION_MAX_MS) {
    throw badField('durationMs', `an integer from ${DTMF_DURATION_MIN_MS} to ${DTMF_DURATION_MAX_MS}`);
  }
  return { party: p, digits: body.digits.toUpperCase(), durationMs: d };
}

export interface TransferRequest {
  target: string;
  keep: Side;
}

/** `/transfer`: `{ target, keep?: 'caller' | 'callee' (default caller: the callee's leg is replaced) }` */
export function parseTransfer(body: Record<string, unknown>): TransferRequest {
  only(body, ['target', 'keep']);
  const target = party(body, 'target', true)!;
  const k = body.keep ?? 'caller';
  if (k !== 'caller' && k !== 'callee') throw badField('keep', "one of 'caller', 'callee'");
  return { target, keep: k };
}

export const LIST_LIMIT_MAX = 500;
export const LIST_LIMIT_DEFAULT = 100;
const STATES: readonly CallState[] = ['routing', 'ringing', 'answered', 'ending', 'ended'];

export interface ListQuery {
  /** undefined: every state but ended */
  states?: CallState[];
  party?: string;
  limit: number;
  offset: number;
  cursor?: { createdAt: number; id: string };
}

/** `GET /api/calls?state=&party=&limit=&offset=|cursor=` */
export function parseListQuery(q: URLSearchParams): ListQuery {
  for (const k of q.keys()) if (!['state', 'party', 'limit', 'offset', 'cursor'].includes(k)) throw badField(k, 'unknown query parameter (allowed: state, party, limit, offset, cursor)');
  const out: ListQuery = { limit: LIST_LIMIT_DEFAULT, offset: 0 };
  const state = q.get('state');
  if (state !== null && state !== 'all') {
    const states = state.split(',');
    for (const s of states) if (!(STATES as readonly string[]).includes(s)) throw badField('state', `all, or a comma list of ${STATES.join(', ')}`);
    out.states = states as CallState[];
  } else if (state === null) {
    out.states = STATES.filter((s) => s !== 'ended');
  }
  const p = q.get('party');
  if (p !== null) {
    if (!PARTY.test(p)) throw badField('party', 'a user name, trunk name or number');
    out.party = p;
  }
  const limit = q.get('limit');
  if (limit !== null) {
    if (!/^\d{1,4}$/.test(limit) || Number(limit) < 1 || Number(limit) > LIST_LIMIT_MAX) throw badField('limit', `an integer from 1 to ${LIST_LIMIT_MAX}`);
    out.limit = Number(limit);
  }
  const offset = q.get('offset');
  const cursor = q.get('cursor');
  if (offset !== null && cursor !== null) throw badField('cursor', 'give cursor or offset, not both');
  if (offset !== null) {
    if (!/^\d{1,7}$/.test(offset)) throw badField('offset', 'a non-negative integer');
    out.offset = Number(offset);
  }
  if (cursor !== null) out.cursor = decodeCursor(cursor);
  return out;
}

export function encodeCursor(c: { createdAt: number; id: string }): string {
  return Buffer.from(`${c.createdAt}:${c.id}`).toString('base64url');
}

function decodeCursor(s: string): { createdAt: number; id: string } {
  const m = s.length <= 200 ? /^(\d{1,15}):([A-Za-z0-9-]{1,64})$/.exec(Buffer.from(s, 'base64url').toString('utf8')) : null;
  if (!m) throw badField('cursor', 'not a cursor this API gave');
  return { createdAt: Number(m[1]), id: m[2]! };
}
