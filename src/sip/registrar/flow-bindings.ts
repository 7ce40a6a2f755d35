import { parseSipUri } from '../message/sip-uri';
import type { Flow } from '../transport/flow';

/**
 * Webphone flows (research note §1.8, §4.2): after a successful REGISTER over a connection, the
 * registered Contact (user@host) is bound to that connection, so later requests for that Contact
 * (whose host is usually `<random>.invalid`) go back over it. Forgotten when the connection closes.
 */
export class FlowBindings {
  private readonly byContact = new Map<string, Flow>();

  static keyOf(uri: string): string | undefined {
    const u = parseSipUri(uri);
    if (!u) return undefined;
    return `${(u.user ?? '').toLowerCase()}@${u.host.toLowerCase()}`;
  }

  bind(contactUri: string, flow: Flow): void {
    const k = FlowBindings.keyOf(contactUri);
    if (k) this.byContact.set(k, flow);
  }

  unbind(contactUri: string): void {
    const k = FlowBindings.keyOf(contactUri);
    if (k) this.byContact.delete(k);
  }

  lookup(uri: string): Flow | undefined {
    const k = FlowBindings.keyOf(uri);
    const f = k ? this.byContact.get(k) : undefined;
    return f && !f.closed ? f : undefined;
  }

  forgetFlow(flow: Flow): void {
    for (const [k, f] of this.byContact) if (f === flow) this.byContact.delete(k);
  }

  get size(): number {
    return this.byContact.size;
  }
}
