import { Clock, systemClock } from '../../common/clock';
import { LogThrottle } from '../../common/log-throttle';
import { Logger } from '../../common/logger';
import { isThisHostAddress } from '../../common/host-addresses';
import { sourceKeyer, type SourceKeyer } from '../../common/source-key';
import { MemoryStateStore } from '../state/memory-state-store';
import { StateStore } from '../state/state-store';
import { AuthCounters, AuthFailureKind } from './auth-counters';
import { DigestAuth } from './digest-auth';
import { FailureBackoff } from './failure-backoff';

/** Authentication limits (docs/configuration.md: FERRY_AUTH_*). */
export interface AuthLimits {
  /** how long a nonce is usable; after that a right answer gets a new nonce with stale=true */
  nonceLifetimeMs: number;
  /** failures from one source (an IPv4 address, an IPv6 /64: src/common/source-key.ts), within the window, that lock it out */
  maxFailuresPerSource: number;
  /** failures naming one user (from anywhere), within the window, that lock the user out */
  maxFailuresPerUser: number;
  failureWindowMs: number;
  lockoutMs: number;
  /** answer of a source's 2nd failure in the window held this long, doubling per failure (0 or absent: no back-off) */
  backoffBaseMs?: number;
  /** the longest an answer to a failure is held */
  backoffMaxMs?: number;
  /** IPv6 sources are counted by this many leading bits, 48..128 (absent: FERRY_SOURCE_IPV6_PREFIX, default 64) */
  sourceIpv6Prefix?: number;
}

export const DEFAULT_AUTH_LIMITS: AuthLimits = {
  nonceLifetimeMs: 30_000,
  maxFailuresPerSource: 10,
  maxFailuresPerUser: 20,
  failureWindowMs: 60_000,
  lockoutMs: 300_000,
  backoffBaseMs: 100,
  backoffMaxMs: 1600,
};

/** A request to authenticate: what the digest is checked against. */
export interface AuthRequest {
  method: string;
  /** the Request-URI as received */
  uri: string;
  /** Authorization (REGISTER) or Proxy-Authorization (INVITE) */
  header: string | undefined;
  source: string;
  sourcePort: number;
  transport: string;
}

/** Whom a digest user name names, and the password to check it with. */
export interface AuthAccount<T> {
  password: string;
  who: T;
}

export type AuthOutcome<T> =
  | { ok: true; who: T; username: string }
  | { ok: false; status: 401 | 407 | 403; reason: string; headers: Record<string, string> };

/**
 * Digest authentication of REGISTER and INVITE with replay and brute-force protection:
 * - the nonce must be ours and bound to the source address: any answer on another nonce gets a new one
 *   with stale=true and is no failure (a forged UDP source needs no nonce, so it must not count);
 * - the `uri` must be the Request-URI, the nonce fresh (a right answer on an old nonce of ours gets a new
 *   one with stale=true, and is no failure);
 * - each nonce count is claimed once in the state store (a repeated or lower `nc` is a replay, on
 *   every gateway sharing the store);
 * - the answer to a failure is held back (back-off: from a source's 2nd failure in the window,
 *   doubling, capped: src/gateway/registrar/failure-backoff.ts);
 * - failures are counted per source and per user; reaching the limit within the window locks that
 *   source or user out (403) for the lockout time. A source is an IPv4 address or an IPv6 prefix (a /64
 *   unless FERRY_SOURCE_IPV6_PREFIX says otherwise: src/common/source-key.ts), so a guesser cannot
 *   step through the addresses of its own /64; the back-off counts by the same key;
 * - every refusal is counted (ferry_auth_failures_total{kind}, ferry_auth_lockouts_total) and
 *   logged as one line with a fixed message, `src_ip` (for fail2ban) and `src_key` (the source counted).
 * While the state store does not answer, this gateway's own memory keeps the counts and claims.
 */
export class SipAuthenticator {
  private readonly local: MemoryStateStore;
  private readonly backoff: FailureBackoff;
  private readonly sourceKey: SourceKeyer;
  /** requests refused during a lockout: one line per subject per 10 s (a locked-out guesser keeps sending; all are counted) */
  private readonly lockedOutLog: LogThrottle;
  /** right answers with a published password from elsewhere: one line per source per 10 s */
  private readonly publishedLog: LogThrottle;

  constructor(
    private readonly digest: DigestAuth,
    private readonly store: StateStore,
    private readonly limits: AuthLimits,
    private readonly counters: AuthCounters,
    private readonly log: Logger,
    clock: Clock = systemClock,
    /**
     * passwords everyone knows (the example sip-config's: published-passwords.ts): a right answer with one is
     * accepted only from this host, else refused 403
     */
    private readonly published: ReadonlySet<string> = new Set(),
  ) {
    this.local = new MemoryStateStore(clock);
    this.sourceKey = sourceKeyer(limits.sourceIpv6Prefix);
    this.lockedOutLog = new LogThrottle(10_000, () => clock.now());
    this.publishedLog = new LogThrottle(10_000, () => clock.now());
    this.backoff = new FailureBackoff(limits.backoffBaseMs ?? 0, limits.backoffMaxMs ?? 0, limits.failureWindowMs, clock);
  }

  async authenticate<T>(req: AuthRequest, lookup: (username: string) => AuthAccount<T> | undefined, challengeStatus: 401 | 407): Promise<AuthOutcome<T>> {
    const challenge = (stale: boolean): AuthOutcome<T> => ({
      ok: false,
      status: challengeStatus,
      reason: challengeStatus === 401 ? 'Unauthorized' : 'Proxy Authentication Required',
      headers: { [challengeStatus === 401 ? 'WWW-Authenticate' : 'Proxy-Authenticate']: this.digest.challenge(req.source, stale) },
    });
    const sourceSubject = `ip:${this.sourceKey(req.source)}`;
    if (await this.lockedOut(req, sourceSubject, undefined)) return forbidden();
    const creds = DigestAuth.parse(req.header);
    if (!creds) return challenge(false);
    if (!this.digest.issuedTo(creds.nonce, req.source)) {
      // not a nonce we sent to this address (forged, from another address, or made with the key of a gateway
      // restarted on the in-memory store): a fresh challenge with stale=true whatever the answer, never counted.
      // Counting it would let anyone forging a UDP source lock that source (a site's NAT, a trunk) out without
      // ever receiving a nonce; answering it alike, right password or not, gives a guesser nothing to learn
      this.log.debug('authentication: fresh nonce needed', { src_ip: req.source, user: clip(creds.username), why: 'foreign-nonce' });
      return challenge(true);
    }
    const account = lookup(creds.username);
    if (account && (await this.lockedOut(req, `user:${creds.username}`, creds.username))) return forbidden();
    if (!account) return this.failed(req, 'unknown-user', creds.username, false, challenge);
    const check = this.digest.verify(creds, { method: req.method, uri: req.uri, source: req.source }, account.password);
    if (!check.ok) {
      if (check.stale) {
        this.log.debug('authentication: fresh nonce needed', { src_ip: req.source, user: clip(creds.username), why: check.why });
        return challenge(true);
      }
      return this.failed(req, check.why, creds.username, true, challenge);
    }
    const fresh = await this.attempt('claimNonceCount', (s) => s.claimNonceCount(creds.nonce, check.nc, this.limits.nonceLifetimeMs + 1000));
    if (!fresh) return this.failed(req, 'replay', creds.username, true, challenge);
    if (this.published.has(account.password) && !isThisHostAddress(req.source)) {
      // the example sip-config's passwords are in the README: from another host they would let anyone register
      // as its users and call through its trunk (a `FERRY_HOST=0.0.0.0 npm start` left on the shipped file)
      const logged = this.publishedLog.admit(this.sourceKey(req.source));
      if (logged) {
        this.log.warn('authentication refused: the password is the published example one', { src_ip: req.source, src_key: this.sourceKey(req.source),
          user: clip(creds.username), method: req.method, transport: req.transport, suppressed: logged.suppressed });
      }
      return { ok: false, status: 403, reason: 'Forbidden',
        headers: { Warning: '399 ferry "this password is the example published with ferry; set your own in the sip-config (FERRY_SIP_CONFIG)"' } };
    }
    return { ok: true, who: account.who, username: creds.username };
  }

  private async lockedOut(req: AuthRequest, subject: string, user: string | undefined): Promise<boolean> {
    const left = await this.attempt('authLockoutLeft', (s) => s.authLockoutLeft(subject));
    if (left <= 0) return false;
    this.counters.failed('locked-out');
    const logged = this.lockedOutLog.admit(subject);
    if (logged) this.log.warn('authentication refused: locked out', { src_ip: req.source, src_key: this.sourceKey(req.source), src_port: req.sourcePort, transport: req.transport, method: req.method, ...(user ? { user: clip(user) } : {}), lockout_left_ms: left, suppressed: logged.suppressed });
    return true;
  }

  /** counts and logs a failure; locks out the source (and the user, when it is one of ours) at the limit */
  private async failed<T>(req: AuthRequest, kind: AuthFailureKind, user: string, knownUser: boolean, challenge: (stale: boolean) => AuthOutcome<T>): Promise<AuthOutcome<T>> {
    const { limits } = this;
    this.counters.failed(kind);
    const key = this.sourceKey(req.source);
    this.log.warn('authentication failed', { src_ip: req.source, src_key: key, src_port: req.sourcePort, transport: req.transport, method: req.method, user: clip(user), kind });
    const sourceLocked = await this.attempt('countAuthFailure', (s) => s.countAuthFailure(`ip:${key}`, limits.maxFailuresPerSource, limits.failureWindowMs, limits.lockoutMs));
    const userLocked = knownUser && (await this.attempt('countAuthFailure', (s) => s.countAuthFailure(`user:${user}`, limits.maxFailuresPerUser, limits.failureWindowMs, limits.lockoutMs)));
    for (const [locked, scope] of [[sourceLocked, 'source'], [userLocked, 'user']] as const) {
      if (!locked) continue;
      this.counters.lockouts++;
      this.log.warn('authentication lockout', { src_ip: req.source, src_key: key, user: clip(user), scope, lockout_ms: limits.lockoutMs });
    }
    if (sourceLocked || userLocked) return forbidden();
    // back-off: a guesser's next try waits; a first typo is answered at once
    await this.backoff.hold(this.backoff.delayFor(key));
    return challenge(false);
  }

  /** runs a store operation; while the store does not answer, on this gateway's own memory */
  private async attempt<R>(operation: string, fn: (store: StateStore) => Promise<R>): Promise<R> {
    try {
      return await fn(this.store);
    } catch (err) {
      this.log.debug('authentication state kept locally', { operation, err: (err as Error).message });
      return fn(this.local);
    }
  }
}

function forbidden<T>(): AuthOutcome<T> {
  return { ok: false, status: 403, reason: 'Forbidden', headers: {} };
}

/** a user name as logged: bounded, whatever the client sent */
function clip(user: string): string {
  return user.length > 64 ? `${user.slice(0, 64)}…` : user;
}
