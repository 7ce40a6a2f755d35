import type Srf from 'drachtio-srf';
import { Logger } from '../../common/logger';
import { DEFAULT_MAX_CONTACTS, SipConfig } from '../config/sip-config';
import { Registration } from '../state/registration';
import { StateStore } from '../state/state-store';
import { SipAuthenticator } from './sip-authenticator';
import { parseContacts } from './contact-header';
import { contactTargetProblem } from './contact-target';
import { natNextHop } from './nat-next-hop';
import { ReachabilityChange, reachabilityBinding } from './qualify';
import { isFlowBound } from './flow-binding';

/** What `registration.changed` tells: the user's bindings after a REGISTER that added or removed one. */
export interface RegistrationChange {
  user: string;
  aor: string;
  added: string[];
  removed: string[];
  contacts: { contact: string; transport: Registration['transport']; expiresAt: number }[];
}

export interface RegisterResponse {
  send(status: number, reason?: string | { headers?: Record<string, string> }, opts?: { headers?: Record<string, string> }): void;
}

/**
 * The registrar: REGISTER with digest authentication (webphones over WebSocket, IP phones over
 * UDP/TCP; SipAuthenticator refuses replays and locks out guessing); bindings go to the state store
 * with their expiry. `Expires: 0` / `*` removes them.
 */
export class Registrar {
  constructor(
    private readonly config: SipConfig,
    private readonly store: StateStore,
    private readonly auth: SipAuthenticator,
    private readonly log: Logger,
    private readonly instanceId: string,
    /** called after a REGISTER that added or removed a binding (a refresh of the same bindings is no change) */
    private readonly onChange: (change: RegistrationChange) => void = () => {},
    /** called when a REGISTER rewrote a binding that qualify had marked unreachable (the mark is gone) */
    private readonly onReachable: (change: ReachabilityChange) => void = () => {},
  ) {}

  async handle(req: Srf.SrfRequest & { protocol?: string; source_address?: string; source_port?: number; uri?: string }, res: RegisterResponse): Promise<void> {
    const outcome = await this.auth.authenticate(
      {
        method: 'REGISTER',
        uri: String(req.uri ?? ''),
        header: req.get('Authorization'),
        source: String(req.source_address ?? ''),
        sourcePort: Number(req.source_port ?? 0),
        transport: String(req.protocol ?? 'udp').toLowerCase(),
      },
      (username) => {
        const u = this.config.users.find((x) => x.user === username);
        return u ? { password: u.password, who: u } : undefined;
      },
      401,
    );
    if (!outcome.ok) {
      res.send(outcome.status, outcome.reason, { headers: outcome.headers });
      return;
    }
    const user = outcome.who;
    const toUser = (req.getParsedHeader('To') as { uri?: string } | undefined)?.uri;
    const toUserPart = toUser ? /^sips?:([^@;>]+)@/.exec(toUser)?.[1] : undefined;
    if (toUserPart && toUserPart !== user.user) {
      res.send(403, 'Forbidden', { headers: {} });
      return;
    }
    const contactHeader = req.get('Contact') ?? '';
    const defaultExpires = req.has('Expires') ? Number(req.get('Expires')) : 3600;
    const transport = String(req.protocol ?? 'udp').toLowerCase() as Registration['transport'];
    const now = Date.now();
    // the bindings before this REGISTER: registration.changed reports only what it added or removed
    const existing = await this.store.getRegistrations(user.user);
    const before = existing.map((r) => r.contact);
    const aor = `sip:${user.user}@${this.config.domain}`;
    if (contactHeader.trim() === '*') {
      for (const r of existing) await this.store.removeRegistration(user.user, r.contact);
      if (before.length > 0) this.onChange({ user: user.user, aor, added: [], removed: before, contacts: [] });
      res.send(200);
      return;
    }
    const contacts = parseContacts(contactHeader);
    const maxContacts = this.config.maxContacts ?? DEFAULT_MAX_CONTACTS;
    if (contacts.length > maxContacts) {
      res.send(403, 'Too Many Contacts', { headers: {} });
      return;
    }
    // calls to the user go where its Contacts say (or, for a Contact naming another public address, to the
    // REGISTER's source): never to this host's own services, a metadata address or a third party
    for (const c of contacts) {
      if ((c.expires ?? defaultExpires) === 0) continue;
      const problem = contactTargetProblem(c.uri, String(req.source_address ?? ''), { transport, port: Number(req.source_port ?? 0) });
      if (!problem) continue;
      this.log.warn('registration refused: contact address', { user: user.user, src_ip: req.source_address, contact: c.uri.slice(0, 128), problem });
      res.send(403, 'Forbidden', { headers: { Warning: `399 ferry "${problem}"` } });
      return;
    }
    // the user's bindings as this REGISTER changes them, least recently refreshed first
    const bound: Binding[] = existing.map((r) => ({ contact: r.contact, registeredAt: r.registeredAt })).sort((a, b) => a.registeredAt - b.registeredAt);
    const accepted: string[] = [];
    for (const c of contacts) {
      const asked = c.expires ?? defaultExpires;
      if (!Number.isFinite(asked) || asked < 0) continue;
      if (asked === 0) {
        await this.store.removeRegistration(user.user, c.uri);
        this.log.info('unregistered', { user: user.user, contact: c.uri });
        remove(bound, c.uri);
        continue;
      }
      if (asked < this.config.minExpires) {
        res.send(423, 'Interval Too Brief', { headers: { 'Min-Expires': String(this.config.minExpires) } });
        return;
      }
      // a new binding beyond the cap replaces the least recently refreshed one (a webphone reloaded without
      // unregistering leaves one behind each time; the newest is the one that answers)
      if (!bound.some((b) => b.contact === c.uri)) {
        while (bound.length >= maxContacts) {
          const oldest = bound.shift()!;
          await this.store.removeRegistration(user.user, oldest.contact);
          this.log.info('registration replaced: too many contacts', { user: user.user, contact: oldest.contact, max: maxContacts });
        }
      }
      const expires = Math.min(asked, this.config.maxExpires);
      const flowBound = isFlowBound({ contact: c.uri, transport, source: `${req.source_address}:${req.source_port}` });
      await this.store.putRegistration({
        aor,
        user: user.user,
        contact: c.uri,
        transport,
        source: `${req.source_address}:${req.source_port}`,
        webrtc: transport === 'ws' || transport === 'wss',
        registeredAt: now,
        expiresAt: now + expires * 1000,
        instanceId: this.instanceId,
        ...(flowBound ? { flowBound } : {}),
      });
      const was = existing.find((r) => r.contact === c.uri);
      if (was?.unreachableSince !== undefined) {
        this.onReachable({ ...reachabilityBinding(was), transport, source: `${req.source_address}:${req.source_port}`, to: 'reachable', unreachableSince: was.unreachableSince, by: 'register' });
      }
      remove(bound, c.uri);
      bound.push({ contact: c.uri, registeredAt: now });
      accepted.push(`<${c.uri}>;expires=${expires}`);
      const via = natNextHop({ contact: c.uri, transport, source: `${req.source_address}:${req.source_port}` });
      this.log.info('registered', { user: user.user, contact: c.uri, transport, expires, ...(via ? { via } : {}) });
    }
    const current = await this.store.getRegistrations(user.user);
    const added = current.map((r) => r.contact).filter((c) => !before.includes(c));
    const removed = before.filter((c) => !current.some((r) => r.contact === c));
    if (added.length > 0 || removed.length > 0) {
      this.onChange({ user: user.user, aor, added, removed, contacts: current.map((r) => ({ contact: r.contact, transport: r.transport, expiresAt: r.expiresAt })) });
    }
    const contactOut = current
      .map((r) => `<${r.contact}>;expires=${Math.max(0, Math.round((r.expiresAt - now) / 1000))}`)
      .join(', ');
    res.send(200, { headers: contactOut ? { Contact: contactOut } : {} });
  }
}

type Binding = Pick<Registration, 'contact' | 'registeredAt'>;

function remove(bound: Binding[], contact: string): void {
  const i = bound.findIndex((b) => b.contact === contact);
  if (i >= 0) bound.splice(i, 1);
}
