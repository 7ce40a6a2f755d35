/**
 * A self-signed certificate for TLS tests, made the way `ferry start` makes its development certificate
 * (src/cli/dev-certificate.ts, Debian's openssl command) in a fresh temporary directory. The certificate
 * is its own CA: clients trust exactly it by passing `ca: [cert]`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureDevCertificate } from '../../src/cli/dev-certificate';

export interface TestCertificate {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
  /** removes the directory */
  remove(): void;
}

export function makeTestCertificate(names: string[] = ['localhost', '127.0.0.1']): TestCertificate {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-test-cert-'));
  const made = ensureDevCertificate(dir, names);
  return {
    certFile: made.certFile,
    keyFile: made.keyFile,
    cert: readFileSync(made.certFile),
    key: readFileSync(made.keyFile),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
