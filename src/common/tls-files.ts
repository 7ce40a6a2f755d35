import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import tls from 'node:tls';

/** A certificate chain and its private key, read from PEM files (FERRY_TLS_CERT / FERRY_TLS_KEY). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** PEM: the server certificate first, then any intermediates */
  cert: Buffer;
  key: Buffer;
  /** what the leaf certificate says, for the start-up line */
  subject: string;
  subjectAltName: string;
  validTo: Date;
}

type Env = Record<string, string | undefined>;

/**
 * Reads and checks a certificate and key: both files readable, the certificate parses, the key parses
 * and belongs to it. Every problem is one clear Error naming the file; nothing secret is in the message.
 */
export function loadTlsFiles(certFile: string, keyFile: string): TlsFiles {
  const cert = readPem(certFile, 'FERRY_TLS_CERT', 'certificate');
  const key = readPem(keyFile, 'FERRY_TLS_KEY', 'private key');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`FERRY_TLS_CERT=${certFile}: not a PEM certificate (${(err as Error).message})`);
  }
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
    tls.createSecureContext({ cert, key });
  } catch (err) {
    throw new Error(`FERRY_TLS_KEY=${keyFile}: unusable with ${certFile}: ${(err as Error).message}`);
  }
  return { certFile, keyFile, cert, key, subject: leaf.subject.replace(/\n/g, ', '), subjectAltName: leaf.subjectAltName ?? '', validTo: new Date(leaf.validTo) };
}

/** FERRY_TLS_CERT + FERRY_TLS_KEY, both or neither (`undefined`: no TLS listeners). */
export function tlsFilesFromEnv(env: Env = process.env): TlsFiles | undefined {
  const certFile = env.FERRY_TLS_CERT || undefined;
  const keyFile = env.FERRY_TLS_KEY || undefined;
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) throw new Error('FERRY_TLS_CERT and FERRY_TLS_KEY must be set together (PEM certificate and its private key)');
  return loadTlsFiles(certFile, keyFile);
}

/**
 * Extra certificate authorities ferry trusts when it opens a TLS connection itself (SIP over TLS to a phone
 * or trunk): FERRY_TLS_CA, a PEM bundle, added to Node's built-in list. `undefined` = the built-in list only.
 */
export function trustedCasFromEnv(env: Env = process.env): Buffer[] | undefined {
  const file = env.FERRY_TLS_CA || undefined;
  if (!file) return undefined;
  const pem = readPem(file, 'FERRY_TLS_CA', 'CA bundle');
  return [pem];
}

function readPem(file: string, variable: string, what: string): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    throw new Error(`${variable}=${file}: cannot read the ${what}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!data.toString('latin1').includes('-----BEGIN ')) throw new Error(`${variable}=${file}: not a PEM file (no -----BEGIN line)`);
  return data;
}
