import { CallEventType, callEventTypes } from '../events/call-events';
import { JsonValue } from '../config/located-json';

/** One webhook receiver from sip-config's `webhooks` list (docs/webhooks.md). */
export interface WebhookReceiver {
  /** names the receiver in logs, metrics and the Redis queue key; default: the URL's host[:port] */
  name: string;
  url: string;
  /** HMAC-SHA256 key the POSTs are signed with */
  secret: string;
  /** the event types it gets; all of them when absent */
  events?: CallEventType[];
  /** bound of one POST (connect, send, answer) */
  timeoutMs: number;
  /** first retry delay; it doubles on each failure up to retryMaxMs */
  retryInitialMs: number;
  retryMaxMs: number;
  /** an event not delivered within this long after it was queued is dropped (counted) */
  maxAgeMs: number;
  /** events waiting for this receiver at most; a new event past it is dropped (counted) */
  maxQueue: number;
}

export const WEBHOOK_DEFAULTS = {
  timeoutMs: 5000,
  retryInitialMs: 1000,
  retryMaxMs: 60_000,
  maxAgeSeconds: 86_400,
  maxQueue: 10_000,
} as const;
/** receivers per gateway at most (each has one POST in flight at a time) */
export const MAX_WEBHOOK_RECEIVERS = 16;
const MIN_SECRET_LENGTH = 16;

type Obj = { [key: string]: JsonValue };
const isObj = (v: JsonValue | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const FIELDS = ['name', 'url', 'secret', 'events', 'timeoutMs', 'retryInitialMs', 'retryMaxMs', 'maxAgeSeconds', 'maxQueue'];

/**
 * Validates sip-config's `webhooks` value; every problem goes to `problem(path, what)` (the
 * config loader adds file and line). Returns the receivers that are valid.
 */
export function parseWebhookReceivers(value: JsonValue | undefined, problem: (path: string, what: string) => void): WebhookReceiver[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    problem('webhooks', 'must be a list of {"url", "secret", "events"?}');
    return [];
  }
  if (value.length > MAX_WEBHOOK_RECEIVERS) problem('webhooks', `at most ${MAX_WEBHOOK_RECEIVERS} receivers`);
  const out: WebhookReceiver[] = [];
  value.slice(0, MAX_WEBHOOK_RECEIVERS).forEach((w, i) => {
    const path = `webhooks[${i}]`;
    if (!isObj(w)) return problem(path, 'must be an object {"url", "secret", "events"?}');
    for (const k of Object.keys(w)) if (!FIELDS.includes(k)) problem(`${path}.${k}`, `unknown field (allowed: ${FIELDS.join(', ')})`);
    let ok = true;
    const int = (key: string, fallback: number, min: number, max: number): number => {
      const v = w[key];
      if (v === undefined) return fallback;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        problem(`${path}.${key}`, `must be an integer between ${min} and ${max}`);
        ok = false;
        return fallback;
      }
      return v;
    };
    let url: URL | undefined;
    if (typeof w.url !== 'string' || w.url === '') {
      problem(`${path}.url`, w.url === undefined ? 'is required' : 'must be a non-empty string');
    } else {
      try {
        url = new URL(w.url);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') {
          problem(`${path}.url`, `${JSON.stringify(w.url)} is not an http:// or https:// URL`);
          url = undefined;
        } else if (url.username || url.password) {
          problem(`${path}.url`, 'must not carry credentials (the signature authenticates ferry)');
          url = undefined;
        }
      } catch {
        problem(`${path}.url`, `${JSON.stringify(w.url)} is not a URL`);
      }
    }
    const secret = w.secret;
    if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
      problem(`${path}.secret`, secret === undefined ? 'is required' : `must be a string of at least ${MIN_SECRET_LENGTH} characters`);
      ok = false;
    }
    let events: CallEventType[] | undefined;
    if (w.events !== undefined) {
      if (!Array.isArray(w.events) || w.events.length === 0) {
        problem(`${path}.events`, `must be a non-empty list of event types (${callEventTypes.join(', ')})`);
        ok = false;
      } else {
        events = [];
        w.events.forEach((e, j) => {
          if (typeof e === 'string' && (callEventTypes as readonly string[]).includes(e)) events!.push(e as CallEventType);
          else {
            problem(`${path}.events[${j}]`, `${JSON.stringify(e)} is not an event type (${callEventTypes.join(', ')})`);
            ok = false;
          }
        });
      }
    }
    let name: string | undefined;
    if (w.name !== undefined) {
      if (typeof w.name !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(w.name)) {
        problem(`${path}.name`, 'must be a name of 1 to 64 letters, digits, . _ -');
        ok = false;
      } else name = w.name;
    } else if (url) name = url.host.replace(/[^A-Za-z0-9._-]/g, '_');
    const timeoutMs = int('timeoutMs', WEBHOOK_DEFAULTS.timeoutMs, 100, 30_000);
    const retryInitialMs = int('retryInitialMs', WEBHOOK_DEFAULTS.retryInitialMs, 10, 600_000);
    const retryMaxMs = int('retryMaxMs', WEBHOOK_DEFAULTS.retryMaxMs, 10, 3_600_000);
    if (retryMaxMs < retryInitialMs) {
      problem(`${path}.retryMaxMs`, 'must not be less than retryInitialMs');
      ok = false;
    }
    const maxAgeSeconds = int('maxAgeSeconds', WEBHOOK_DEFAULTS.maxAgeSeconds, 1, 7 * 86_400);
    const maxQueue = int('maxQueue', WEBHOOK_DEFAULTS.maxQueue, 1, 1_000_000);
    if (name && out.some((r) => r.name === name)) {
      problem(`${path}.name`, `two receivers named ${JSON.stringify(name)}${w.name === undefined ? ' (the URL host): give each a "name"' : ''}`);
      ok = false;
    }
    if (ok && url && name && typeof secret === 'string') {
      out.push({ name, url: url.toString(), secret, ...(events ? { events } : {}), timeoutMs, retryInitialMs, retryMaxMs, maxAgeMs: maxAgeSeconds * 1000, maxQueue });
    }
  });
  return out;
}
