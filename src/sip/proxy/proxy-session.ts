import { randomBytes } from 'node:crypto';
import { makeResponse } from '../engine/message-builders';
import { parseNameAddr } from '../message/name-addr';
import { callIdOf } from '../message/sip-message';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import type { Flow } from '../transport/flow';
import { bestResponseIndex, upstreamStatus } from './best-response';
import { buildBranchRequest, withoutOurVia } from './forwarded-request';
import { ProxyBranch, TRANSACTION_TIMEOUT, type BranchEvents } from './proxy-branch';
import { type ConnectedHops, MAX_TARGETS } from '../engine/next-hop-resolver';
import { MAX_PROXY_BRANCHES, parseProxyDestination, type ProxyOptions } from './proxy-options';
import type { PendingServerRequest } from '../engine/pending-server-requests';
import type { ProxyServices } from '../engine/proxy-dispatch';
import type { ProxyReport } from './proxy-report';

export interface ProxySessionInit {
  pending: PendingServerRequest;
  /** the request as received, without its Route headers */
  request: SipRequest;
  options: ProxyOptions;
  /** loop hash of the request as received (goes into our branches) */
  hash: string;
  /** the Request-URI names ferry sip: each branch gets its target as Request-URI */
  replaceUri: boolean;
  /** the stamp our Record-Route carries for this request's Call-ID (forwarded-request.ts, RouteStamp) */
  routeStamp: string;
  report: ProxyReport;
  onEnded(session: ProxySession): void;
}

/**
 * One proxied request (RFC 3261 §16, stateful): its branches tried one after the other (serial) or
 * all at once (simultaneous), provisional responses and every 2xx relayed upstream at once, the best
 * failure relayed when every branch failed, redirects followed when asked, and the branches cancelled
 * when one answers or the caller cancels.
 */
export class ProxySession implements BranchEvents {
  private readonly branches: ProxyBranch[] = [];
  private readonly launching = new Set<ProxyBranch>();
  /** the further targets of a branch's destination, and how many of them were tried (RFC 3263 §4.3) */
  private readonly targets = new Map<ProxyBranch, { hops: ConnectedHops; tried: number }>();
  /** still looking for a target that answers 2xx */
  private searching = true;
  /** status of the final response sent upstream, once sent */
  private upstreamFinal: number | undefined;
  private anySent = false;
  private ended = false;
  readonly callId: string;

  constructor(private readonly services: ProxyServices, private readonly init: ProxySessionInit) {
    this.callId = callIdOf(init.request);
  }

  get method(): string {
    return this.init.request.method;
  }

  start(): void {
    for (const d of this.init.options.destinations) this.branches.push(this.newBranch(d));
    this.advance();
  }

  /** The caller's CANCEL arrived; the engine already answered it 200 and the request 487. */
  cancelledUpstream(): void {
    if (this.upstreamFinal !== undefined) return; // a CANCEL after the final response changes nothing (RFC 3261 §9.2)
    this.upstreamFinal = 487;
    this.services.log.info('proxied request cancelled by the caller', { callId: this.callId });
    this.stopSearching();
    this.advance();
  }

  /** Engine shutdown: timers stop, nothing more is sent. */
  stop(): void {
    for (const b of this.branches) b.stop();
    this.ended = true;
  }

  // ------------------------------------------------------------------ branch events

  onProvisional(_branch: ProxyBranch, res: SipResponse): void {
    if (res.status === 100 || this.upstreamFinal !== undefined) return;
    this.toUpstream(res);
  }

  onFinal(branch: ProxyBranch, res: SipResponse): void {
    const status = res.status;
    if (status === 503 && this.tryNextTarget(branch, '503')) {
      this.advance();
      return;
    }
    if (branch.flow) this.init.report.response(res, branch.flow);
    if (status < 300) {
      this.toUpstream(res);
      if (this.searching) {
        this.services.log.info('proxied request answered', { callId: this.callId, target: branch.target, status });
        this.stopSearching();
      }
      this.init.report.finish();
    } else if (status < 400 && this.init.options.followRedirects && this.searching) {
      this.followRedirect(branch, res);
    } else if (status >= 600 && this.searching) {
      this.services.log.info('proxied request declined everywhere (6xx): other branches cancelled', { callId: this.callId, status });
      this.stopSearching();
    }
    this.advance();
  }

  onGaveUp(branch: ProxyBranch, status: number, why: string): void {
    this.services.log.info('proxy branch gave up', { callId: this.callId, target: branch.target, status, why });
    if (why === TRANSACTION_TIMEOUT && !branch.heardProvisional) this.tryNextTarget(branch, 'timeout');
    this.advance();
  }

  /**
   * RFC 3263 §4.3: the branch's target timed out or answered 503; while the proxy still searches, the
   * request goes to the next target of the same destination as a new branch right after it (at most
   * MAX_TARGETS targets in all). The failed branch stays as it ended (it counts for the best response).
   */
  private tryNextTarget(branch: ProxyBranch, why: string): boolean {
    const t = this.targets.get(branch);
    if (!t || t.hops.left === 0 || !this.searching || this.ended || this.upstreamFinal !== undefined || t.tried >= MAX_TARGETS) return false;
    const next = this.newBranch(branch.target);
    this.branches.splice(this.branches.indexOf(branch) + 1, 0, next);
    this.launching.add(next);
    void t.hops.next().then((flow) => {
      this.launching.delete(next);
      if (this.ended) return;
      if (!flow) {
        next.unreachable('no further target');
        return;
      }
      this.services.log.info('proxy branch target failed: trying the next target', { callId: this.callId, target: branch.target, why,
        from: branch.flow ? `${branch.flow.protocol}/${branch.flow.remoteAddress}:${branch.flow.remotePort}` : undefined, to: `${flow.protocol}/${flow.remoteAddress}:${flow.remotePort}` });
      this.targets.set(next, { hops: t.hops, tried: t.tried + 1 });
      if (!this.searching) {
        next.cancel();
        this.advance();
        return;
      }
      this.sendBranch(next, flow);
    });
    return true;
  }

  // ------------------------------------------------------------------ forking

  private newBranch(target: string): ProxyBranch {
    const o = this.init.options;
    return new ProxyBranch(target, this.services, { provisionalMs: o.provisionalTimeoutMs, finalMs: o.finalTimeoutMs }, this);
  }

  /** Starts what may start now, and ends the operation when every branch is over. */
  private advance(): void {
    if (this.ended) return;
    if (this.searching) {
      const inFlight = this.branches.some((b) => this.launching.has(b) || b.state === 'calling' || b.state === 'proceeding');
      for (const b of this.branches) {
        if (b.state !== 'waiting' || this.launching.has(b)) continue;
        if (!this.init.options.simultaneous && inFlight) break;
        void this.launch(b);
        if (!this.init.options.simultaneous) break;
      }
    }
    const open = this.branches.some((b) => !b.settled || this.launching.has(b));
    if (open) return;
    if (this.upstreamFinal === undefined) this.forwardBest();
    this.end();
  }

  private async launch(branch: ProxyBranch): Promise<void> {
    this.launching.add(branch);
    let flow: Flow | undefined;
    let why = '';
    try {
      if (this.services.resolveTargets) {
        const hops = await this.services.resolveTargets(branch.target);
        flow = hops.flow;
        this.targets.set(branch, { hops, tried: 1 });
      } else {
        flow = await this.services.resolve(branch.target);
      }
    } catch (err) {
      why = err instanceof Error ? err.message : String(err);
    }
    this.launching.delete(branch);
    if (this.ended) return;
    if (!flow) {
      branch.unreachable(why);
      return;
    }
    if (!this.searching) {
      branch.cancel();
      this.advance();
      return;
    }
    this.sendBranch(branch, flow);
  }

  private sendBranch(branch: ProxyBranch, flow: Flow): void {
    try {
      const req = buildBranchRequest({
        original: this.init.request, target: branch.target, replaceUri: this.init.replaceUri, recordRoute: this.init.options.recordRoute,
        routeStamp: this.init.routeStamp,
        appHeaders: this.init.options.headers, hash: this.init.hash,
      }, this.services.local, flow);
      this.anySent = true;
      this.services.log.debug('proxy branch sent', { callId: this.callId, target: branch.target, flow: flow.id });
      branch.send(req, flow);
    } catch (err) {
      branch.unreachable(err instanceof Error ? err.message : String(err));
    }
  }

  /** A 3xx: its Contacts become branches right after this one (bounded), as drachtio-server does. */
  private followRedirect(branch: ProxyBranch, res: SipResponse): void {
    const added: ProxyBranch[] = [];
    for (const c of res.headers.getAll('Contact')) {
      const uri = parseNameAddr(c)?.uri;
      if (!uri || uri === '*') continue;
      let target: string;
      try {
        target = parseProxyDestination(uri);
      } catch {
        continue;
      }
      if (this.branches.length + added.length >= MAX_PROXY_BRANCHES) break;
      if (this.branches.some((b) => b.target === target) || added.some((b) => b.target === target)) continue; // no redirect loops
      added.push(this.newBranch(target));
    }
    this.services.log.info('proxy following a redirect', { callId: this.callId, from: branch.target, status: res.status, targets: added.map((b) => b.target) });
    this.branches.splice(this.branches.indexOf(branch) + 1, 0, ...added);
  }

  private stopSearching(): void {
    this.searching = false;
    for (const b of this.branches) b.cancel();
  }

  // ------------------------------------------------------------------ upstream

  /** RFC 3261 §16.7 step 6: every branch failed; the best of their final responses goes upstream. */
  private forwardBest(): void {
    const settled = this.branches.filter((b) => b.status !== undefined);
    if (!this.anySent) {
      this.init.report.fail(`error proxying request to ${this.init.options.destinations.join(', ')}`);
    }
    const i = bestResponseIndex(settled.map((b) => b.status as number));
    const best = i >= 0 ? settled[i] : undefined;
    let res: SipResponse;
    if (best?.finalResponse) {
      res = best.finalResponse;
      const status = upstreamStatus(res.status);
      if (status !== res.status) res = { ...res, status, reason: 'Server Internal Error' };
    } else {
      const status = best ? upstreamStatus(best.status as number) : 408;
      res = makeResponse(this.init.pending.request, status, randomBytes(8).toString('hex'));
    }
    this.services.log.info('proxied request failed on every target', { callId: this.callId, status: res.status,
      targets: this.branches.map((b) => `${b.target}=${b.status}`) });
    this.toUpstream(res, best?.finalResponse !== undefined);
  }

  /** Relays a response to the caller; one from a target first loses our Via (`fromTarget`). */
  private toUpstream(res: SipResponse, fromTarget = true): void {
    const out = fromTarget ? withoutOurVia(res) : res;
    const txn = this.init.pending.txn;
    const success = res.status >= 200 && res.status < 300;
    if (res.status >= 200 && this.upstreamFinal === undefined) this.upstreamFinal = res.status;
    if (success && this.method === 'INVITE' && (txn.terminated || (txn.finalSent && (this.upstreamFinal ?? 0) >= 300))) {
      // the caller's transaction is over (cancelled, answered) but a 2xx is still passed on (RFC 3261 §16.7 step 5)
      this.init.pending.flow.send(serializeSipMessage(out));
      return;
    }
    txn.respond(out);
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.init.report.finish();
    this.init.onEnded(this);
  }
}
