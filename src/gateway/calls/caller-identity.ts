import { SipConfig, SipTrunk, SipUser } from '../config/sip-config';
import { SipAuthenticator } from '../registrar/sip-authenticator';
import { CallRouter } from './call-router';

/** Who placed a new INVITE, or the response that refuses it. */
export type CallerIdentity =
  | { ok: true; party: string; uri: string; fromHeader: string; trunk?: SipTrunk }
  | { ok: false; status: number; reason: string; headers: Record<string, string> };

/** The parts of an incoming INVITE that say who sent it. */
export interface CallerRequest {
  uri: string;
  transport: string;
  source: string;
  sourcePort: number;
  proxyAuthorization: string | undefined;
  /** user part of the From URI */
  fromUser: string | undefined;
}

/**
 * Identifies the caller of a new INVITE:
 * - from a source listed in a trunk's acceptFrom (same transport, address and port) and that trunk
 *   has no inboundAuth: the trunk, without a password;
 * - otherwise by digest (407 challenge): a user's name and password, or a trunk's inboundAuth
 *   (accepted only from its acceptFrom sources when it lists any).
 */
export async function identifyCaller(req: CallerRequest, config: SipConfig, router: CallRouter, auth: SipAuthenticator): Promise<CallerIdentity> {
  const trusted = router.trunkFor(req.transport, req.source, req.sourcePort);
  if (trusted && !trusted.inboundAuth) return asTrunk(trusted, req, config);
  const outcome = await auth.authenticate<{ user: SipUser } | { trunk: SipTrunk }>(
    { method: 'INVITE', uri: req.uri, header: req.proxyAuthorization, source: req.source, sourcePort: req.sourcePort, transport: req.transport },
    (username) => {
      const user = config.users.find((u) => u.user === username);
      if (user) return { password: user.password, who: { user } };
      const trunk = router.trunkByInboundUser(username, req.transport, req.source, req.sourcePort);
      return trunk?.inboundAuth ? { password: trunk.inboundAuth.password, who: { trunk } } : undefined;
    },
    407,
  );
  if (!outcome.ok) return outcome;
  if ('trunk' in outcome.who) return asTrunk(outcome.who.trunk, req, config);
  const { user } = outcome.who;
  return {
    ok: true,
    party: user.user,
    uri: `sip:${user.user}@${config.domain}`,
    fromHeader: `${user.displayName ? `"${user.displayName.replace(/"/g, '')}" ` : ''}<sip:${user.user}@${config.domain}>`,
  };
}

function asTrunk(trunk: SipTrunk, req: CallerRequest, config: SipConfig): CallerIdentity {
  const num = req.fromUser && /^[A-Za-z0-9\-_.!~*'()&=+$,?/%#]{1,64}$/.test(req.fromUser) ? req.fromUser : 'anonymous';
  return { ok: true, party: trunk.name, uri: `sip:${num}@${trunk.address}`, fromHeader: `<sip:${num}@${config.domain}>`, trunk };
}
