import type Srf from 'drachtio-srf';
import type { Clock, TimerHandle } from '../../common/clock';
import { NO_CONNECTION_REASON } from '../../common/flow-failure';
import type { Logger } from '../../common/logger';
import { isBehindNatAddress, plainAddress } from '../../common/nat-addresses';
import type { Registration } from '../state/registration';
import type { StateStore } from '../state/state-store';
import { natNextHop } from './nat-next-hop';
import type { RegistrationChange } from './registrar';

/** FERRY_FLOW_RECONNECT_GRACE_MS default: JsSIP's longest wait between reconnection attempts (30 s), plus its REGISTER */
export const DEFAULT_FLOW_RECONNECT_GRACE_MS = 45_000;
/** FERRY_FLOW_CHECK_MS default */
export const DEFAULT_FLOW_CHECK_MS = 30_000;

export interface FlowSettings {
  /** how long after the control connection to ferry sip came up a "no connection" answer still proves nothing */
  reconnectGraceMs: number;
  /** how often the bindings that live on a connection are checked (0: only when a request finds them gone) */
  checkMs: number;
}

/**
 * Whether a binding can only be reached over the connection its device registered over (RFC 5626's
 * flow), so it is gone once that connection is: a WebSocket registration always; a TCP or TLS one whose
 * Contact names a `.invalid` host or `transport=ws`, or a private address while the REGISTER came from
 * another (public) one — a phone behind NAT that ferry cannot open a connection to. A UDP binding, and
 * a TCP/TLS one naming an address ferry can connect to, is not: it stays until it expires (or qualify
 * marks it).
 */
export function isFlowBound(reg: Pick<Registration, 'contact' | 'transport' | 'source'> & { flowBound?: boolean }): boolean {
  if (reg.flowBound) return true;
  const transport = reg.transport.toLowerCase();
  if (transport === 'ws' || transport === 'wss') return true;
  if (transport !== 'tcp' && transport !== 'tls') return false;
  const m = /^sips?:(?:[^@;?]*@)?(\[[^\]]*\]|[^:;?>]+)(?::\d+)?([^?>]*)/i.exec(reg.contact.trim());
  if (!m) return false;
  const host = plainAddress(m[1]!).toLowerCase();
  if (host.endsWith('.invalid')) return true;
  if (/;transport=wss?(;|$)/i.test(m[2] ?? '')) return true;
  return isBehindNatAddress(host) && natNextHop(reg) !== undefined;
}

/** A failed request's final answer, as drachtio-srf reports it (SipError: status and reason phrase). */
export interface FailedAnswer {
  status?: number;
  reason?: string;
}

/**
 * What an answer to a request for a binding that lives on a connection says about that connection:
 * `closed` — ferry sip saw it close (its `410 Gone`, or `430 Flow Failed` from an edge proxy, RFC 5626);
 * `no-connection` — ferry sip holds none and could open none, nothing was sent (its `503` with
 * NO_CONNECTION_REASON); undefined — anything else (the device answered, or no answer at all).
 */
export function flowAnswer(answer: FailedAnswer | undefined): 'closed' | 'no-connection' | undefined {
  if (answer?.status === 410 || answer?.status === 430) return 'closed';
  if (answer?.status === 503 && answer.reason === NO_CONNECTION_REASON) return 'no-connection';
  return undefined;
}

/** `registration.changed` for a binding removed because its connection is gone */
export type FlowClosedChange = RegistrationChange & { reason: 'flow-closed' };

/** An OPTIONS to a Contact through ferry sip: its final answer, or undefined when none came (or none could be sent). */
export type FlowProbe = (reg: Registration, timeoutMs: number) => Promise<FailedAnswer | undefined>;

export interface FlowBindingDeps {
  store: Pick<StateStore, 'getRegistrations' | 'removeRegistrationIf' | 'leaseAlive'>;
  users: () => readonly string[];
  domain: string;
  instanceId: string;
  clock: Clock;
  log: Logger;
  settings: FlowSettings;
  probe: FlowProbe;
  onChange?: (change: FlowClosedChange) => void;
  probeTimeoutMs?: number;
  maxInFlight?: number;
}

/**
 * Bindings that live on a connection (isFlowBound), as Kamailio and Asterisk keep WebSocket contacts: once
 * the connection is gone, so is the binding. ferry sip does not tell an app that a connection closed, so
 * the gateway learns it from ferry sip's answers, to a call's INVITE (any request the gateway sends to a
 * registration) or to an OPTIONS it sends such bindings every `checkMs`:
 *
 * - `410` (ferry sip saw that very connection close) removes the binding at once;
 * - ferry sip's "no connection" `503` removes it only once the control connection to ferry sip has been
 *   up `reconnectGraceMs`: right after a restart of ferry sip it holds no connection at all, and the
 *   webphones still open reconnect and register again within that time (JsSIP does); a binding not
 *   registered again by then belongs to a tab that is gone.
 *
 * A removal is conditional on the binding still being the one the request was sent to (same
 * `registeredAt`, one atomic step in the store): a REGISTER that renewed it meanwhile, at any gateway,
 * keeps it. Each removal logs `registration removed: flow closed` and gives `registration.changed` with
 * `reason: "flow-closed"`. A device that reconnects registers again and is bound again.
 */
export class FlowBoundRegistrations {
  private controlUpAt: number | undefined;
  private timer: TimerHandle | undefined;
  private graceTimer: TimerHandle | undefined;
  private running = false;
  private checking = false;
  private readonly probeTimeoutMs: number;
  private readonly maxInFlight: number;

  constructor(private readonly d: FlowBindingDeps) {
    this.probeTimeoutMs = d.probeTimeoutMs ?? 5000;
    this.maxInFlight = d.maxInFlight ?? 16;
  }

  /** the control connection to ferry sip is up (first connection or any reconnection) */
  controlUp(): void {
    this.controlUpAt = this.d.clock.now();
    this.graceTimer?.cancel();
    this.graceTimer = undefined;
    if (this.running && this.d.settings.checkMs > 0) this.graceTimer = this.d.clock.setTimeout(() => void this.check(), this.d.settings.reconnectGraceMs);
  }

  /** the control connection is down: no answer says anything until it is up again */
  controlDown(): void {
    this.controlUpAt = undefined;
    this.graceTimer?.cancel();
    this.graceTimer = undefined;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    if (this.d.settings.checkMs > 0) this.timer = this.d.clock.setInterval(() => void this.check(), this.d.settings.checkMs);
  }

  stop(): void {
    this.running = false;
    this.timer?.cancel();
    this.graceTimer?.cancel();
    this.timer = this.graceTimer = undefined;
  }

  /** whether ferry sip's "no connection" now proves a binding's connection gone (the reconnection grace is over) */
  private settled(): boolean {
    return this.controlUpAt !== undefined && this.d.clock.now() - this.controlUpAt >= this.d.settings.reconnectGraceMs;
  }

  /** Why `answer` proves the connection of `reg` gone, or undefined when it does not. */
  closedBy(reg: Registration, answer: FailedAnswer | undefined): string | undefined {
    if (!isFlowBound(reg)) return undefined;
    const said = flowAnswer(answer);
    if (said === 'closed') return `${answer!.status} from ferry sip: the connection closed`;
    if (said === 'no-connection' && this.settled()) return 'ferry sip has no connection for it';
    return undefined;
  }

  /**
   * A request to one of `target.user`'s registrations failed with `answer`. `removed`: it proves the
   * binding's connection gone and the binding was removed; `renewed`: it would have, but the binding was
   * registered again meanwhile (over a new connection) and stays; `absent`: the binding is gone already
   * (another gateway or request removed it); undefined: the answer proves nothing about a connection
   * (or the target is no registration, or its binding does not live on a connection).
   */
  async requestFailed(target: { user?: string; uri: string }, answer: FailedAnswer | undefined, sentAt?: number): Promise<'removed' | 'renewed' | 'absent' | undefined> {
    if (!target.user || flowAnswer(answer) === undefined) return undefined;
    const reg = (await this.d.store.getRegistrations(target.user)).find((r) => r.contact === target.uri);
    if (!reg) return 'absent';
    const why = this.closedBy(reg, answer);
    if (!why) return undefined;
    // registered again after the request was sent: the answer is about the connection before
    if (sentAt !== undefined && reg.registeredAt > sentAt) return 'renewed';
    return (await this.forget(reg, why)) ? 'removed' : 'renewed';
  }

  /** Removes `reg` when it is still the binding registered at its `registeredAt`; logs and tells the change. */
  async forget(reg: Registration, why: string): Promise<boolean> {
    const removed = await this.d.store.removeRegistrationIf(reg.user, reg.contact, reg.registeredAt).catch(() => false);
    if (!removed) return false;
    this.d.log.info('registration removed: flow closed', { user: reg.user, contact: reg.contact, transport: reg.transport, source: reg.source, why, reason: 'flow-closed' });
    const left = await this.d.store.getRegistrations(reg.user).catch(() => [] as Registration[]);
    try {
      this.d.onChange?.({
        user: reg.user,
        aor: reg.aor || `sip:${reg.user}@${this.d.domain}`,
        added: [],
        removed: [reg.contact],
        contacts: left.map((r) => ({ contact: r.contact, transport: r.transport, expiresAt: r.expiresAt })),
        reason: 'flow-closed',
      });
    } catch {
      /* a listener's failure is not the registrar's */
    }
    return true;
  }

  /**
   * Sends every binding that lives on a connection, of this gateway (or of a gateway whose lease is
   * gone), an OPTIONS through ferry sip; one whose answer proves its connection gone is removed. Nothing
   * happens within the reconnection grace (it is scheduled again at its end) or when a check is running.
   */
  async check(): Promise<number> {
    if (!this.running || this.checking || !this.settled()) return 0;
    this.checking = true;
    let removed = 0;
    try {
      const due: Registration[] = [];
      for (const user of this.d.users()) {
        const regs = await this.d.store.getRegistrations(user).catch(() => [] as Registration[]);
        for (const r of regs) if (isFlowBound(r) && (await this.owns(r))) due.push(r);
      }
      for (let i = 0; i < due.length && this.running; i += this.maxInFlight) {
        const batch = due.slice(i, i + this.maxInFlight);
        const results = await Promise.all(batch.map(async (r) => {
          const answer = await this.d.probe(r, this.probeTimeoutMs).catch(() => undefined);
          const why = this.closedBy(r, answer);
          return why ? this.forget(r, `${why} (OPTIONS)`) : false;
        }));
        removed += results.filter(Boolean).length;
      }
    } finally {
      this.checking = false;
    }
    return removed;
  }

  private async owns(reg: Registration): Promise<boolean> {
    if (!reg.instanceId || reg.instanceId === this.d.instanceId) return true;
    return !(await this.d.store.leaseAlive(reg.instanceId).catch(() => true));
  }
}

interface SentRequest {
  on(event: 'response', cb: (res: { status: number; reason?: string }) => void): void;
}

type SrfRequestFn = (
  uri: string,
  opts: { method: string; headers: Record<string, string>; proxy?: string },
  callback: (err: Error | null, sent: SentRequest) => void,
) => void;

/** The flow check's OPTIONS over ferry sip (srf.request), where a call would go (its NAT next hop for a TCP phone behind NAT). */
export function srfFlowProbe(srf: Srf, clock: Clock, from: string): FlowProbe {
  const request = srf.request.bind(srf) as unknown as SrfRequestFn;
  return (reg, timeoutMs) =>
    new Promise<FailedAnswer | undefined>((resolve) => {
      let settled = false;
      const finish = (a: FailedAnswer | undefined): void => {
        if (settled) return;
        settled = true;
        timer.cancel();
        resolve(a);
      };
      const timer = clock.setTimeout(() => finish(undefined), timeoutMs);
      const nextHop = natNextHop(reg);
      try {
        request(reg.contact, { method: 'OPTIONS', headers: { From: `<${from}>`, To: `<${reg.contact}>` }, ...(nextHop ? { proxy: nextHop } : {}) }, (err, sent) => {
          if (err) return finish(undefined);
          sent.on('response', (res) => finish({ status: res.status, reason: res.reason }));
        });
      } catch {
        finish(undefined);
      }
    });
}
