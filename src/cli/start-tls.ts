import path from 'node:path';
import { loadTlsFiles, type TlsFiles } from '../common/tls-files';
import { devCertificateNames, ensureDevCertificate, trustInstructions } from './dev-certificate';
import { defaultDataDir } from './private-redis';

type Env = Record<string, string | undefined>;

/** What `ferry start` hands its parts for TLS, and what it tells the operator. */
export interface StartTls {
  files: TlsFiles;
  /** the development certificate was used (no FERRY_TLS_CERT given) */
  development: boolean;
  /** FERRY_TLS_CERT/FERRY_TLS_KEY for ferry sip and the gateway */
  partEnv: Record<string, string>;
  /** lines for the operator: how to trust a development certificate, or which certificate is served */
  notes: string[];
}

/**
 * TLS for `ferry start`: FERRY_TLS_CERT + FERRY_TLS_KEY when given (checked here, before anything is
 * spawned), else a self-signed development certificate in the data directory covering localhost,
 * 127.0.0.1, this host's name, FERRY_PUBLIC_HOST and a non-wildcard FERRY_HOST. FERRY_TLS=0 turns TLS
 * off (no TLS, WSS or HTTPS listener). Throws a one-line Error when the files are unusable or no certificate can be made.
 */
export function setUpStartTls(env: Env): StartTls | undefined {
  if (env.FERRY_TLS === '0') return undefined;
  let certFile = env.FERRY_TLS_CERT || undefined;
  let keyFile = env.FERRY_TLS_KEY || undefined;
  if (!!certFile !== !!keyFile) throw new Error('FERRY_TLS_CERT and FERRY_TLS_KEY must be set together (PEM certificate and its private key)');
  const development = !certFile;
  const notes: string[] = [];
  if (!certFile || !keyFile) {
    const dataDir = path.resolve(env.FERRY_DATA_DIR || defaultDataDir());
    // the HTTPS page and SIP/TLS listen where FERRY_HTTP_HOST / FERRY_SIP_HOST (else FERRY_HOST) say
    const listenHosts = [env.FERRY_HTTP_HOST ?? env.FERRY_HOST, env.FERRY_SIP_HOST ?? env.FERRY_HOST].filter((h): h is string => !!h);
    const dev = ensureDevCertificate(dataDir, devCertificateNames(env.FERRY_PUBLIC_HOST || undefined, listenHosts));
    certFile = dev.certFile;
    keyFile = dev.keyFile;
    notes.push(...trustInstructions(dev.certFile), `  it covers: ${dev.names.join(', ')}`);
  }
  const files = loadTlsFiles(certFile, keyFile);
  if (!development) notes.push(`ferry: TLS certificate ${files.certFile} (${files.subject}; ${files.subjectAltName}; valid until ${files.validTo.toISOString().slice(0, 10)})`);
  return { files, development, partEnv: { FERRY_TLS_CERT: files.certFile, FERRY_TLS_KEY: files.keyFile }, notes };
}

/**
 * The port a TLS listener gets when its variable is unset: its standard port, or any free port (0)
 * when the matching plain listener was asked for any free port (tests run many `ferry start`s at once).
 */
export function tlsPortDefault(value: string | undefined, plainPort: string | undefined, standard: number): string {
  if (value !== undefined && value !== '') return value;
  return plainPort === '0' ? '0' : String(standard);
}
