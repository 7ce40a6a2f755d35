import type { CallEvent, CallEventBus } from '../events/call-events';
import type { RegistrationsElsewhere } from '../registrar/registrations-elsewhere';
import type { Call } from './call';
import type { Routed } from './call-router';
import type { ForkGrant } from './fork-budget';
import type { Fork } from './fork-call';
import type { ForkSet } from './fork-set';

export interface LateRegistrationOptions {
  /** the gateway's event bus: `registration.changed` says which Contacts a REGISTER added */
  events?: CallEventBus;
  /** registrations made at the other gateways sharing the store (registrations-elsewhere.ts) */
  elsewhere?: RegistrationsElsewhere;
  /** the user's registrations as targets (CallRouter.candidates): a Contact that joins is read back from the store */
  candidates(first: Routed): AsyncIterable<Routed>;
  /** at most this many forks in the set, the ones it started with and the ones that joined (MAX_FORKS) */
  maxForks: number;
  /** the party rung: a user's target */
  first: Routed;
  call: Call;
  /** the timeline's prefix for the party (`caller: ` for an API call's party A, empty otherwise) */
  label: string;
  /** a fork of its own (endpoint and offer) for a registration that joins */
  prepare(to: Routed): Promise<Fork>;
  /** gives up a fork that could not join */
  release(f: Fork): Promise<void>;
  /** one more registration from the budget of the call's source and the gateway's (none: unlimited) */
  take?(): ForkGrant;
  /** why a registration cannot join this set, if it cannot (checked before anything is made for it) */
  refuses?(to: Routed): string | undefined;
  /** a registration that could not join for a fork limit */
  limited?(limit: 'per-source' | 'total' | 'per-call', contact: string): void;
}

/**
 * A registration made while a user's registrations ring at once joins the ring (docs/gateway.md, "A call",
 * step 2): the REGISTER's new Contacts (`registration.changed`'s `added`) get their own fork in the
 * ringing set, within the set's cap (`maxForks` in all) and one registration more from the fork budget
 * each. A re-REGISTER of a Contact that rings already adds nothing (it is no new binding, and the set rings
 * each Contact once). The Contacts added before the set exists are kept and tried once it does.
 * A REGISTER taken by another gateway sharing the store joins the same way (`elsewhere`: that gateway's
 * news, heard here once the binding is stored). A call to a user's only registration is a set of one.
 * `stop()` (the ring is over) ends listening and gives the budget back.
 */
export class LateRegistrations {
  private set: ForkSet<Fork> | undefined;
  private readonly queue: { contact: string; elsewhere: boolean }[] = [];
  private readonly grants: ForkGrant[] = [];
  private readonly unsubscribe: (() => void)[] = [];
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly o: LateRegistrationOptions) {
    if (o.first.user && o.events) this.unsubscribe.push(o.events.subscribe((e) => this.onEvent(e)));
    if (o.first.user && o.elsewhere) this.unsubscribe.push(o.elsewhere.subscribe((c) => this.onAdded(c.user, c.added, true)));
  }

  /** the set the registrations join; the Contacts added so far are tried now */
  attach(set: ForkSet<Fork>): void {
    this.set = set;
    this.drain();
  }

  /** no more joining; the registrations taken from the budget are given back */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const u of this.unsubscribe.splice(0)) u();
    this.queue.length = 0;
    void this.chain.then(() => {
      for (const g of this.grants.splice(0)) g.release();
    });
  }

  /** resolves once every Contact seen so far has joined or been turned away */
  get idle(): Promise<void> {
    return this.chain;
  }

  private onEvent(e: CallEvent): void {
    if (e.type !== 'registration.changed' || typeof e.data.user !== 'string') return;
    const added = Array.isArray(e.data.added) ? e.data.added.filter((c): c is string => typeof c === 'string') : [];
    this.onAdded(e.data.user, added, false);
  }

  private onAdded(user: string, added: readonly string[], elsewhere: boolean): void {
    if (this.stopped || user !== this.o.first.user || added.length === 0) return;
    this.queue.push(...added.map((contact) => ({ contact, elsewhere })));
    if (this.set) this.drain();
  }

  private drain(): void {
    const contacts = this.queue.splice(0);
    for (const { contact, elsewhere } of contacts) this.chain = this.chain.then(() => this.join(contact, elsewhere)).catch(() => undefined);
  }

  private async join(contact: string, elsewhere: boolean): Promise<void> {
    const { o } = this;
    const set = this.set;
    if (!set || this.stopped || set.answered) return;
    if (set.all.some((f) => f.to.uri === contact)) return;
    if (set.size >= o.maxForks) {
      this.note('ring-all-limited', `${o.label}${contact} registered while ringing: not rung, ${o.maxForks} registrations ring already`);
      o.limited?.('per-call', contact);
      return;
    }
    let to: Routed | undefined;
    for await (const t of o.candidates(o.first)) {
      if (t.uri === contact) {
        to = t;
        break;
      }
    }
    // gone again, or marked unreachable, before it could be rung
    if (!to || this.stopped || set.answered) return;
    const refused = o.refuses?.(to);
    if (refused) {
      this.note('fork-not-joined', `${o.label}${contact} registered while ringing: ${refused}`);
      return;
    }
    const grant = o.take?.();
    if (grant && grant.extra === 0) {
      this.note('ring-all-limited', `${o.label}${contact} registered while ringing: not rung (${grant.cutBy ?? 'total'} limit)`);
      o.limited?.(grant.cutBy ?? 'total', contact);
      return;
    }
    let fork: Fork;
    try {
      fork = await o.prepare(to);
    } catch (err) {
      grant?.release();
      this.note('fork-failed', `${o.label}${contact}: no endpoint for the registration made while ringing: ${String((err as Error).message ?? err)}`);
      return;
    }
    if (this.stopped || !set.add(fork)) {
      await o.release(fork);
      grant?.release();
      return;
    }
    if (grant) this.grants.push(grant);
    this.note('fork-joined', `${o.label}${contact} (${to.kind}): registered while ringing${elsewhere ? ' (at another gateway)' : ''}`);
  }

  /** a timeline entry, stored at once (the record shows the ring as it changes) */
  private note(event: string, detail: string): void {
    this.o.call.note(event, detail);
    if (!this.o.call.isEnding) void this.o.call.persist();
  }
}
