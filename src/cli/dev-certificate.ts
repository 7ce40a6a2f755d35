import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { isWildcardHost } from '../common/listen-address';

/** A development certificate in the data directory: `cert.pem` is also its own CA (self-signed). */
export interface DevCertificate {
  certFile: string;
  keyFile: string;
  /** made now (false: an earlier one still covers every name and is valid for 30 more days) */
  created: boolean;
  /** the names and addresses it covers */
  names: string[];
}

const RENEW_BEFORE_MS = 30 * 86_400_000;
/** browsers refuse longer-lived server certificates even when trusted */
const VALID_DAYS = 397;

/**
 * The names a development certificate covers: localhost, 127.0.0.1, ::1, this host's name, the
 * public host the operator configured (FERRY_PUBLIC_HOST), if any, and the addresses the TLS
 * listeners bind when they are not a wildcard (FERRY_HOST=10.0.0.5: the printed https:// address).
 */
export function devCertificateNames(publicHost: string | undefined, listenHosts: string[] = []): string[] {
  const names = ['localhost', '127.0.0.1', '::1', os.hostname()];
  if (publicHost) names.push(publicHost.replace(/^\[|\]$/g, ''));
  for (const h of listenHosts) if (!isWildcardHost(h)) names.push(h.replace(/^\[|\]$/g, ''));
  return [...new Set(names.filter((n) => n !== ''))];
}

/**
 * A self-signed certificate and key in `<dataDir>/tls/` for `ferry start` without FERRY_TLS_CERT: reused
 * while it covers every name and is not about to expire, otherwise made again with Debian's `openssl`
 * command (node:crypto makes keys but not X.509 certificates). The key file is mode 0600.
 */
export function ensureDevCertificate(dataDir: string, names: string[]): DevCertificate {
  const dir = path.join(dataDir, 'tls');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certFile = path.join(dir, 'dev-cert.pem');
  const keyFile = path.join(dir, 'dev-key.pem');
  if (existsSync(certFile) && existsSync(keyFile) && covers(readFileSync(certFile), names)) return { certFile, keyFile, created: false, names };
  const san = names.map((n) => (net.isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  const tmpCert = `${certFile}.${process.pid}.new`;
  const tmpKey = `${keyFile}.${process.pid}.new`;
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256',
      '-days', String(VALID_DAYS), '-subj', '/O=ferry/CN=ferry development certificate',
      '-addext', `subjectAltName=${san}`,
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0',
      '-addext', 'keyUsage=critical,digitalSignature,keyCertSign',
      '-addext', 'extendedKeyUsage=serverAuth',
      '-keyout', tmpKey, '-out', tmpCert,
    ], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('cannot make a development certificate: the openssl command is not installed (apt-get install openssl), or set FERRY_TLS_CERT and FERRY_TLS_KEY');
    throw new Error(`cannot make a development certificate with openssl: ${(e.stderr?.toString() || e.message).trim().split('\n')[0]}`);
  }
  chmodSync(tmpKey, 0o600);
  renameSync(tmpKey, keyFile);
  renameSync(tmpCert, certFile);
  return { certFile, keyFile, created: true, names };
}

function covers(pem: Buffer, names: string[]): boolean {
  try {
    const cert = new X509Certificate(pem);
    if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return false;
    return names.every((n) => (net.isIP(n) ? cert.checkIP(n) !== undefined : cert.checkHost(n) !== undefined));
  } catch {
    return false;
  }
}

/** How to make a browser or phone trust the development certificate (printed by `ferry start`). */
export function trustInstructions(certFile: string): string[] {
  return [
    `ferry: self-signed development certificate ${certFile} (set FERRY_TLS_CERT/FERRY_TLS_KEY for a real one). To trust it:`,
    `  Debian/Ubuntu: sudo cp ${certFile} /usr/local/share/ca-certificates/ferry-dev.crt && sudo update-ca-certificates`,
    '  Chrome/Chromium: Settings > Privacy and security > Security > Manage certificates > Authorities > Import',
    '  Firefox: Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import',
    '  or open the HTTPS page and the secure WebSocket\'s https:// address (ferry start prints both) once and accept the warning; SIP/TLS phones: install it as a trusted CA',
  ];
}
