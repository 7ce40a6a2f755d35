import type { Clock, TimerHandle } from '../../common/clock';
import type { Logger } from '../../common/logger';
import type { Registration } from '../state/registration';
import type { StateStore } from '../state/state-store';
import { natNextHop } from './nat-next-hop';

/** FERRY_QUALIFY_MS default: below the 30 s some routers keep an idle UDP mapping */
export const DEFAULT_QUALIFY_MS = 25_000;
/** FERRY_QUALIFY_MAX_FAILURES default: pings in a row without an answer that make a registration unreachable */
export const DEFAULT_QUALIFY_MAX_FAILURES = 2;
/** the longest a ping waits for an answer (shorter when the interval is) */
export const QUALIFY_TIMEOUT_MS = 5000;
/** pings waiting for an answer at once, per gateway; the sweep waits for a free one beyond that */
export const QUALIFY_MAX_IN_FLIGHT = 100;

/** which registrations are pinged (FERRY_QUALIFY_SCOPE): UDP ones behind NAT only, or every UDP one */
export type QualifyScope = 'nat' | 'udp';

export interface QualifySettings {
  /** FERRY_QUALIFY_MS: each qualified registration is pinged once per interval; 0: no pings */
  intervalMs: number;
  /** FERRY_QUALIFY_MAX_FAILURES */
  maxFailures: number;
  scope: QualifyScope;
}

/** parses FERRY_QUALIFY_SCOPE (unset: `nat`); a problem is added for anything else */
export function parseQualifyScope(raw: string | undefined, problems: string[]): QualifyScope {
  const v = raw?.trim().toLowerCase();
  if (v === undefined || v === '') return 'nat';
  if (v === 'nat' || v === 'udp') return v;
  problems.push(`environment: FERRY_QUALIFY_SCOPE=${JSON.stringify(raw)}: must be nat or udp`);
  return 'nat';
}

/** whether calls may be sent to a registration: not while it is marked unreachable by qualify */
export function isReachable(reg: Pick<Registration, 'unreachableSince'>): boolean {
  return reg.unreachableSince === undefined;
}

/**
 * Whether a registration is pinged: UDP only (a connection's end already tells ferry sip a TCP, TLS or
 * WebSocket registration is gone, and the connection carries its calls); with scope `nat`, only one
 * reached through its NAT mapping (nat-next-hop.ts), the ones whose mapping the pings keep open.
 */
export function isQualified(reg: Pick<Registration, 'contact' | 'transport' | 'source'>, scope: QualifyScope): boolean {
  if (reg.transport !== 'udp') return false;
  return scope === 'udp' || natNextHop(reg) !== undefined;
}

/** what one OPTIONS ping came to */
export type PingOutcome =
  | { outcome: 'answered'; status: number }
  | { outcome: 'no-answer' }
  /** it could not be sent (no connection to the SIP engine): says nothing about the device */
  | { outcome: 'not-sent'; why: string };

/**
 * sends one OPTIONS to `uri` (through `nextHop` when given) and reports what came of it within `timeoutMs`;
 * `stopped` aborts the wait (and its timer) when the qualifier stops
 */
export type QualifyPing = (target: { uri: string; nextHop?: string }, timeoutMs: number, stopped: AbortSignal) => Promise<PingOutcome>;

/**
 * A registration marked unreachable or reachable again: the gateway publishes it as the
 * `registration.unreachable` / `registration.reachable` event (docs/webhooks.md). `by`: what cleared
 * the mark, an answered ping or the device's next REGISTER (registrar.ts).
 */
export type ReachabilityChange =
  | (ReachabilityBinding & { to: 'unreachable'; unreachableSince: number; failures: number })
  | (ReachabilityBinding & { to: 'reachable'; unreachableSince: number; by: 'answer' | 'register' });

type ReachabilityBinding = Pick<Registration, 'user' | 'aor' | 'contact' | 'transport' | 'source'>;

/** the binding fields a reachability change names */
export function reachabilityBinding(reg: Registration): ReachabilityBinding {
  return { user: reg.user, aor: reg.aor, contact: reg.contact, transport: reg.transport, source: reg.source };
}

export interface QualifierDeps {
  store: StateStore;
  /** the configured user names: registrations are read per user */
  users: () => readonly string[];
  ping: QualifyPing;
  clock: Clock;
  log: Logger;
  instanceId: string;
  settings: QualifySettings;
  maxInFlight?: number;
  timeoutMs?: number;
  /** called once per mark this gateway sets or clears (never throws into the qualifier) */
  onChange?: (change: ReachabilityChange) => void;
}

interface BindingState {
  registeredAt: number;
  failures: number;
}

/**
 * Qualify, as Asterisk's qualify and Kamailio's nathelper do it: every registration in scope is sent an
 * OPTIONS once per FERRY_QUALIFY_MS, where a call to it would go (its NAT mapping for a phone behind a
 * router). The pings keep the router's UDP mapping open, so a call reaches the phone however long it
 * waits between REGISTERs; any answer (even `404`, `405`, `501`) says the device is there. A registration
 * that leaves FERRY_QUALIFY_MAX_FAILURES pings in a row unanswered is marked unreachable in the store
 * (`unreachableSince`, one `registration-unreachable` log line and one `registration.unreachable` event
 * through `onChange`): every gateway's calls skip it. It keeps being pinged; the first answer clears the
 * mark (`registration-reachable`, `registration.reachable`), and so does the device's next REGISTER (the
 * registrar writes the binding anew and tells `registration.reachable` itself).
 *
 * Bounded: the configured users are visited spread evenly over the interval (one slice each tick, about a
 * second apart), never all at once; at most `maxInFlight` pings wait for an answer at a time, and a slice
 * that cannot start its pings waits for them (the sweep slows down, it never piles up). No timer per
 * registration: a binding unregistered or expired is simply not read again; stop() ends the one timer.
 *
 * Several gateways on one store: a registration is pinged by the gateway that took its REGISTER (its
 * `instanceId`); one whose gateway's lease is gone (that gateway died) is taken by whichever gateway
 * claims it first (the store's atomic claim, renewed every other interval).
 */
export class RegistrationQualifier {
  private timer: TimerHandle | undefined;
  /** aborted by stop(): pings still waiting for an answer give up and cancel their timers */
  private stopping = new AbortController();
  private running = false;
  private busy = false;
  /** the slice of the user list the next tick visits */
  private slot = 0;
  private inFlight = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly states = new Map<string, Map<string, BindingState>>();
  private readonly leases = new Map<string, { alive: boolean; at: number }>();
  /** bindings (`user contact`) whose mark is being written: a second outcome meanwhile does not write it again */
  private readonly marking = new Set<string>();
  private readonly slicesPerRound: number;
  private readonly tickMs: number;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  /** what the pings came to so far (tests and logs) */
  readonly counts = { sent: 0, answered: 0, unanswered: 0, notSent: 0, markedUnreachable: 0, markedReachable: 0 };

  constructor(private readonly d: QualifierDeps) {
    const interval = d.settings.intervalMs;
    this.slicesPerRound = Math.max(1, Math.round(interval / 1000));
    this.tickMs = interval / this.slicesPerRound;
    this.timeoutMs = d.timeoutMs ?? Math.max(100, Math.min(QUALIFY_TIMEOUT_MS, interval));
    this.maxInFlight = Math.max(1, d.maxInFlight ?? QUALIFY_MAX_IN_FLIGHT);
  }

  /** `/metrics` lines: pings by outcome, marks set and cleared (none while qualify is off) */
  metricLines(): string[] {
    if (!this.enabled) return [];
    const c = this.counts;
    return [
      '# HELP ferry_qualify_pings_total OPTIONS pings this gateway sent to registrations (qualify), by outcome.',
      '# TYPE ferry_qualify_pings_total counter',
      `ferry_qualify_pings_total{outcome="answered"} ${c.answered}`,
      `ferry_qualify_pings_total{outcome="no-answer"} ${c.unanswered}`,
      `ferry_qualify_pings_total{outcome="not-sent"} ${c.notSent}`,
      '# HELP ferry_qualify_marked_total Registrations this gateway marked unreachable, and reachable again (qualify).',
      '# TYPE ferry_qualify_marked_total counter',
      `ferry_qualify_marked_total{to="unreachable"} ${c.markedUnreachable}`,
      `ferry_qualify_marked_total{to="reachable"} ${c.markedReachable}`,
    ];
  }

  get enabled(): boolean {
    return this.d.settings.intervalMs > 0;
  }

  start(): void {
    if (!this.enabled || this.running) return;
    this.running = true;
    this.stopping = new AbortController();
    this.timer = this.d.clock.setInterval(() => this.tick(), this.tickMs);
    this.d.log.info('qualify started', { intervalMs: this.d.settings.intervalMs, maxFailures: this.d.settings.maxFailures, scope: this.d.settings.scope });
  }

  stop(): void {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
    this.stopping.abort();
    for (const w of this.slotWaiters.splice(0)) w();
    this.states.clear();
    this.leases.clear();
  }

  /** one slice of the users: slice k of n users is users [ceil(k·n/S), ceil((k+1)·n/S)) for S slices per round */
  private tick(): void {
    if (!this.running || this.busy) return;
    const users = this.d.users();
    const k = this.slot;
    this.slot = (this.slot + 1) % this.slicesPerRound;
    const from = Math.ceil((k * users.length) / this.slicesPerRound);
    const to = Math.ceil(((k + 1) * users.length) / this.slicesPerRound);
    if (from >= to) return;
    this.busy = true;
    void (async () => {
      for (const user of users.slice(from, to)) {
        if (!this.running) break;
        await this.visit(user).catch((err: Error) => this.d.log.warn('qualify: registrations not read', { user, err: err.message }));
      }
    })().finally(() => {
      this.busy = false;
    });
  }

  private async visit(user: string): Promise<void> {
    const regs = await this.d.store.getRegistrations(user);
    const known = this.states.get(user);
    if (known) {
      for (const contact of known.keys()) if (!regs.some((r) => r.contact === contact)) known.delete(contact);
      if (known.size === 0) this.states.delete(user);
    }
    for (const reg of regs) {
      if (!this.running) return;
      if (!isQualified(reg, this.d.settings.scope)) continue;
      if (!(await this.owns(reg))) {
        this.states.get(user)?.delete(reg.contact);
        continue;
      }
      await this.freeSlot();
      if (!this.running) return;
      this.inFlight++;
      void this.pingOne(reg)
        .catch((err: Error) => this.d.log.warn('qualify: ping failed', { user, contact: reg.contact, err: err.message }))
        .finally(() => {
          this.inFlight--;
          this.slotWaiters.shift()?.();
        });
    }
  }

  private freeSlot(): Promise<void> {
    if (this.inFlight < this.maxInFlight) return Promise.resolve();
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  /** this gateway pings registrations it took, and ones of a gateway whose lease is gone once it claimed them */
  private async owns(reg: Registration): Promise<boolean> {
    if (reg.instanceId === this.d.instanceId) return true;
    if (reg.instanceId && (await this.leaseAlive(reg.instanceId))) return false;
    return this.d.store.claimAdoption(`qualify:${reg.user} ${reg.contact}`, this.d.instanceId, 2 * this.d.settings.intervalMs).catch(() => false);
  }

  private async leaseAlive(instanceId: string): Promise<boolean> {
    const now = this.d.clock.now();
    const cached = this.leases.get(instanceId);
    if (cached && now - cached.at < this.tickMs) return cached.alive;
    // a store that does not answer: assume the other gateway is alive (no double pings)
    const alive = await this.d.store.leaseAlive(instanceId).catch(() => true);
    this.leases.set(instanceId, { alive, at: now });
    return alive;
  }

  private async pingOne(reg: Registration): Promise<void> {
    const nextHop = natNextHop(reg);
    this.counts.sent++;
    const r = await this.d.ping({ uri: reg.contact, ...(nextHop ? { nextHop } : {}) }, this.timeoutMs, this.stopping.signal);
    if (!this.running) return;
    if (r.outcome === 'not-sent') {
      this.counts.notSent++;
      this.d.log.debug('qualify: ping not sent', { user: reg.user, contact: reg.contact, why: r.why });
      return;
    }
    let byContact = this.states.get(reg.user);
    if (!byContact) this.states.set(reg.user, (byContact = new Map()));
    let state = byContact.get(reg.contact);
    if (!state || state.registeredAt !== reg.registeredAt) byContact.set(reg.contact, (state = { registeredAt: reg.registeredAt, failures: 0 }));
    if (r.outcome === 'answered') {
      this.counts.answered++;
      state.failures = 0;
      const since = reg.unreachableSince;
      if (since !== undefined && (await this.mark(reg, undefined))) {
        this.counts.markedReachable++;
        this.d.log.info('registration-reachable', { user: reg.user, contact: reg.contact, source: reg.source, status: r.status, unreachableMs: this.d.clock.now() - since });
        this.tell({ ...reachabilityBinding(reg), to: 'reachable', unreachableSince: since, by: 'answer' });
      }
      return;
    }
    this.counts.unanswered++;
    state.failures++;
    if (state.failures < this.d.settings.maxFailures || reg.unreachableSince !== undefined) return;
    const since = this.d.clock.now();
    if (await this.mark(reg, since)) {
      this.counts.markedUnreachable++;
      this.d.log.warn('registration-unreachable', { user: reg.user, contact: reg.contact, source: reg.source, transport: reg.transport, failures: state.failures, ...(nextHop ? { nextHop } : {}) });
      this.tell({ ...reachabilityBinding(reg), to: 'unreachable', unreachableSince: since, failures: state.failures });
    }
  }

  private tell(change: ReachabilityChange): void {
    try {
      this.d.onChange?.(change);
    } catch (err) {
      this.d.log.warn('qualify: reachability change not published', { user: change.user, contact: change.contact, err: (err as Error).message });
    }
  }

  /**
   * Sets (`since`) or clears the unreachable mark of the binding `reg` was read as. Not when the device
   * registered again meanwhile (another registeredAt or source): that newer binding stands as written.
   */
  private async mark(reg: Registration, since: number | undefined): Promise<boolean> {
    const key = `${reg.user} ${reg.contact}`;
    if (this.marking.has(key)) return false;
    this.marking.add(key);
    try {
      return await this.markNow(reg, since);
    } finally {
      this.marking.delete(key);
    }
  }

  private async markNow(reg: Registration, since: number | undefined): Promise<boolean> {
    const fresh = (await this.d.store.getRegistrations(reg.user)).find((r) => r.contact === reg.contact);
    if (!fresh || fresh.registeredAt !== reg.registeredAt || fresh.source !== reg.source) return false;
    if ((fresh.unreachableSince === undefined) === (since === undefined)) return false;
    const { unreachableSince: _was, ...binding } = fresh;
    await this.d.store.putRegistration(since === undefined ? binding : { ...binding, unreachableSince: since });
    return true;
  }
}
