import { parseSipUri } from '../message/sip-uri';
import type { Flow } from '../transport/flow';

/**
 * Webphone flows: after a successful REGISTER over a connection, the
 * registered Contact (user@host) is bound to that connection, so later requests for that Contact
 * (whose host is usually `<random>.invalid`) go back over it. Forgotten when the connection closes.
 * Each binding remembers when its registration expires: until then its connection counts as in use
 * (the idle close of connections spares it).
 */
export class FlowBindings {
  private readonly byContact = new Map<string, { flow: Flow; expiresAt: number | undefined }>();

  static keyOf(uri: string): string | undefined {
    const u = parseSipUri(uri);
    if (!u) return undefined;
    return `${(u.user ?? '').toLowerCase()}@${u.host.toLowerCase()}`;
  }

  /** `expiresAt` (ms, the engine's clock): when the registration lapses unless refreshed; undefined = never. */
  bind(contactUri: string, flow: Flow, expiresAt?: number): void {
    const k = FlowBindings.keyOf(contactUri);
    if (k) this.byContact.set(k, { flow, expiresAt });
  }

  unbind(contactUri: string): void {
    const k = FlowBindings.keyOf(contactUri);
    if (k) this.byContact.delete(k);
  }

  lookup(uri: string): Flow | undefined {
    const k = FlowBindings.keyOf(uri);
    const f = k ? this.byContact.get(k)?.flow : undefined;
    return f && !f.closed ? f : undefined;
  }

  /** True while a registration that has not expired at `now` is bound to `flow`. */
  holdsFlow(flow: Flow, now: number): boolean {
    for (const b of this.byContact.values()) if (b.flow === flow && (b.expiresAt === undefined || b.expiresAt > now)) return true;
    return false;
  }

  forgetFlow(flow: Flow): void {
    for (const [k, b] of this.byContact) if (b.flow === flow) this.byContact.delete(k);
  }

  get size(): number {
    return this.byContact.size;
  }
}
