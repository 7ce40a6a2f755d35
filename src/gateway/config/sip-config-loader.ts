import { readFileSync } from 'node:fs';
import { ConfigError } from './config-error';
import { JsonValue, LocatedJsonError, parseLocatedJson } from './located-json';
import { isIP } from 'node:net';
import { parseWebhookReceivers } from '../webhooks/webhook-config';
import { DEFAULT_MAX_CONTACTS, DigestSecret, RouteTarget, SipConfig, SipRoute, SipTrunk, SipUser, Transport, TrunkSource } from './sip-config';

/**
 * Loads and validates a sip-config file (format: docs/configuration.md). Every problem is
 * reported together, each naming the file, the line and the field; unknown keys are refused so a
 * misspelt key never silently does nothing.
 */
export function loadSipConfig(file: string): SipConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`${file}: cannot read: ${(err as Error).message}`]);
  }
  return parseSipConfig(text, file);
}

type Obj = { [key: string]: JsonValue };

export function parseSipConfig(text: string, file: string): SipConfig {
  let parsed;
  try {
    parsed = parseLocatedJson(text);
  } catch (err) {
    if (err instanceof LocatedJsonError) throw new ConfigError([`${file}:${err.line}: syntax: ${err.detail}`]);
    throw err;
  }
  const problems: string[] = [];
  const lineOf = (path: string): number => {
    for (let p = path; ; p = p.replace(/(\.[^.[\]]+|\[\d+\])$/, '')) {
      const l = parsed.lines.get(p);
      if (l !== undefined) return l;
      if (p === '') return 1;
    }
  };
  const problem = (path: string, what: string): void => {
    problems.push(`${file}:${lineOf(path)}: ${path || '(top level)'}: ${what}`);
  };
  const isObj = (v: JsonValue | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
  const checkKeys = (o: Obj, path: string, allowed: string[]): void => {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) problem(path ? `${path}.${k}` : k, `unknown field (allowed: ${allowed.join(', ')})`);
    }
  };
  /** an optional true/false field (call recording on a user or a route: docs/recording.md) */
  const flag = (o: Obj, key: string, path: string): boolean | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') problem(`${path}.${key}`, 'must be true or false');
    return v === true ? true : undefined;
  };
  const str = (o: Obj, key: string, path: string, opts: { optional?: boolean; pattern?: RegExp; hint?: string } = {}): string | undefined => {
    const v = o[key];
    const p = path ? `${path}.${key}` : key;
    if (v === undefined) {
      if (!opts.optional) problem(p, 'is required');
      return undefined;
    }
    if (typeof v !== 'string' || v === '') {
      problem(p, 'must be a non-empty string');
      return undefined;
    }
    if (opts.pattern && !opts.pattern.test(v)) {
      problem(p, `${JSON.stringify(v)} is not ${opts.hint ?? `matching ${opts.pattern}`}`);
      return undefined;
    }
    return v;
  };
  const int = (o: Obj, key: string, fallback: number, min: number, max: number): number => {
    const v = o[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      problem(key, `must be an integer between ${min} and ${max}`);
      return fallback;
    }
    return v;
  };
  const list = (o: Obj, key: string, path: string): JsonValue[] => {
    const v = o[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      problem(path ? `${path}.${key}` : key, 'must be a list');
      return [];
    }
    return v;
  };

  const root = parsed.value;
  if (!isObj(root)) {
    throw new ConfigError([`${file}:1: (top level): must be an object`]);
  }
  checkKeys(root, '', ['domain', 'users', 'trunks', 'routes', 'minExpires', 'maxExpires', 'maxContacts', 'webhooks']);
  const domain = str(root, 'domain', '', { pattern: /^[A-Za-z0-9.-]+$/, hint: 'a host name' }) ?? '';
  const minExpires = int(root, 'minExpires', 60, 1, 86400);
  const maxExpires = int(root, 'maxExpires', 3600, 1, 86400);
  const maxContacts = int(root, 'maxContacts', DEFAULT_MAX_CONTACTS, 1, 100);
  if (minExpires > maxExpires) problem('minExpires', 'must not exceed maxExpires');

  const users: SipUser[] = [];
  list(root, 'users', '').forEach((u, i) => {
    const path = `users[${i}]`;
    if (!isObj(u)) return problem(path, 'must be an object');
    checkKeys(u, path, ['user', 'password', 'displayName', 'record']);
    const user = str(u, 'user', path, { pattern: /^[A-Za-z0-9._~+-]+$/, hint: 'a SIP user name (letters, digits, . _ ~ + -)' });
    const password = str(u, 'password', path);
    const displayName = str(u, 'displayName', path, { optional: true });
    if (user && users.some((x) => x.user === user)) problem(`${path}.user`, `duplicate user ${JSON.stringify(user)}`);
    const record = flag(u, 'record', path);
    if (user && password) users.push({ user, password, ...(displayName ? { displayName } : {}), ...(record ? { record } : {}) });
  });

  const trunks: SipTrunk[] = [];
  const secret = (t: Obj, key: string, path: string): DigestSecret | undefined => {
    const v = t[key];
    if (v === undefined) return undefined;
    const p = `${path}.${key}`;
    if (!isObj(v)) {
      problem(p, 'must be an object {"username", "password"}');
      return undefined;
    }
    checkKeys(v, p, ['username', 'password']);
    const username = str(v, 'username', p, { pattern: /^[A-Za-z0-9._~+-]+$/, hint: 'a digest user name (letters, digits, . _ ~ + -)' });
    const password = str(v, 'password', p);
    return username && password ? { username, password } : undefined;
  };
  list(root, 'trunks', '').forEach((t, i) => {
    const path = `trunks[${i}]`;
    if (!isObj(t)) return problem(path, 'must be an object');
    checkKeys(t, path, ['name', 'address', 'transport', 'acceptFrom', 'inboundAuth', 'outboundAuth']);
    const name = str(t, 'name', path, { pattern: /^[A-Za-z0-9._-]+$/, hint: 'a name (letters, digits, . _ -)' });
    const address = str(t, 'address', path, { pattern: /^[A-Za-z0-9.-]+:\d{1,5}$/, hint: 'host:port' });
    const transport = (str(t, 'transport', path, { optional: true, pattern: /^(udp|tcp|tls)$/, hint: '"udp", "tcp" or "tls"' }) ?? 'udp') as Transport;
    const addressPort = address ? Number(address.slice(address.lastIndexOf(':') + 1)) : 5060;
    const acceptFrom: TrunkSource[] = [];
    list(t, 'acceptFrom', path).forEach((a, j) => {
      const source = typeof a === 'string' ? parseTrunkSource(a, transport, addressPort) : undefined;
      if (!source) problem(`${path}.acceptFrom[${j}]`, 'must be "[udp:|tcp:|tls:]<IP address>[:port]" (port 1-65535; default: the trunk\'s transport and the port of its address)');
      else acceptFrom.push(source);
    });
    const inboundAuth = secret(t, 'inboundAuth', path);
    const outboundAuth = secret(t, 'outboundAuth', path);
    if (inboundAuth && users.some((u) => u.user === inboundAuth.username)) {
      problem(`${path}.inboundAuth.username`, `${JSON.stringify(inboundAuth.username)} is also a user: digest user names must name one caller`);
    }
    if (inboundAuth && trunks.some((x) => x.inboundAuth?.username === inboundAuth.username)) {
      problem(`${path}.inboundAuth.username`, `${JSON.stringify(inboundAuth.username)} is already another trunk's`);
    }
    if (name && trunks.some((x) => x.name === name)) problem(`${path}.name`, `duplicate trunk ${JSON.stringify(name)}`);
    if (name && address) {
      trunks.push({ name, address, transport, acceptFrom, ...(inboundAuth ? { inboundAuth } : {}), ...(outboundAuth ? { outboundAuth } : {}) });
    }
  });

  const routes: SipRoute[] = [];
  const routeList = root.routes === undefined ? null : list(root, 'routes', '');
  (routeList ?? []).forEach((r, i) => {
    const path = `routes[${i}]`;
    if (!isObj(r)) return problem(path, 'must be an object');
    checkKeys(r, path, ['match', 'to', 'rewrite', 'record']);
    const match = str(r, 'match', path);
    const to = str(r, 'to', path, { pattern: /^(user|user:[A-Za-z0-9._~+-]+|trunk:[A-Za-z0-9._-]+)$/, hint: '"user", "user:<name>" or "trunk:<name>"' });
    const rewrite = str(r, 'rewrite', path, { optional: true });
    let re: RegExp | undefined;
    if (match) {
      try {
        re = new RegExp(`^(?:${match})$`);
      } catch (err) {
        problem(`${path}.match`, `not a valid regular expression: ${(err as Error).message}`);
      }
    }
    let target: RouteTarget | undefined;
    if (to === 'user') target = { kind: 'user' };
    else if (to?.startsWith('user:')) {
      const user = to.slice(5);
      if (!users.some((u) => u.user === user)) problem(`${path}.to`, `no user named ${JSON.stringify(user)} in users`);
      target = { kind: 'user', user };
    } else if (to?.startsWith('trunk:')) {
      const trunk = to.slice(6);
      if (!trunks.some((t) => t.name === trunk)) problem(`${path}.to`, `no trunk named ${JSON.stringify(trunk)} in trunks`);
      target = { kind: 'trunk', trunk };
    }
    const record = flag(r, 'record', path);
    if (re && target) routes.push({ match: re, to: target, ...(rewrite ? { rewrite } : {}), ...(record ? { record } : {}) });
  });
  if (routeList === null) routes.push({ match: /^.*$/, to: { kind: 'user' } });

  const webhooks = parseWebhookReceivers(root.webhooks, problem);

  if (problems.length > 0) throw new ConfigError(problems);
  return { domain, users, trunks, routes, minExpires, maxExpires, maxContacts, ...(webhooks.length > 0 ? { webhooks } : {}) };
}

/**
 * One `acceptFrom` entry: `[transport:]address[:port]`, e.g. `10.0.0.20`, `10.0.0.20:5070`,
 * `tcp:10.0.0.20:5060`. A missing transport is the trunk's, a missing port the port of the trunk's
 * address. Only IP addresses: a request's source is an address, and names are not resolved.
 */
export function parseTrunkSource(entry: string, defaultTransport: Transport, defaultPort: number): TrunkSource | undefined {
  const m = /^(?:(udp|tcp|tls):)?([0-9.]+)(?::(\d{1,5}))?$/i.exec(entry.trim());
  if (!m || isIP(m[2]!) !== 4) return undefined;
  const port = m[3] !== undefined ? Number(m[3]) : defaultPort;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { transport: (m[1]?.toLowerCase() as Transport | undefined) ?? defaultTransport, host: m[2]!, port };
}
