import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../common/package-root';

/**
 * The passwords of the example sip-config shipped with ferry (`sip-config/ferry.json`, what `npm start` uses
 * unless FERRY_SIP_CONFIG names another file): they are printed in the README and the repository, so everyone
 * knows them. The authenticator accepts them only from this host (docs/security.md, "Authentication").
 * Users' passwords and trunks' inbound passwords; an unreadable file gives none.
 */
export function publishedPasswords(file = path.join(PACKAGE_ROOT, 'sip-config', 'ferry.json')): ReadonlySet<string> {
  const out = new Set<string>();
  try {
    const config = JSON.parse(readFileSync(file, 'utf8')) as { users?: Array<{ password?: unknown }>; trunks?: Array<{ inboundAuth?: { password?: unknown } }> };
    for (const u of config.users ?? []) if (typeof u.password === 'string' && u.password) out.add(u.password);
    for (const t of config.trunks ?? []) if (typeof t.inboundAuth?.password === 'string' && t.inboundAuth.password) out.add(t.inboundAuth.password);
  } catch {
    /* no example file: nothing is published */
  }
  return out;
}
