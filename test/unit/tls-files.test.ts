import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadTlsFiles, tlsFilesFromEnv } from '../../src/common/tls-files';
import { ensureDevCertificate } from '../../src/cli/dev-certificate';
import { setUpStartTls } from '../../src/cli/start-tls';

/**
 * The certificate files every TLS listener uses (src/common/tls-files.ts) and `ferry start`'s development
 * certificate (src/cli/dev-certificate.ts, made with the openssl command): bad files are refused with one
 * line naming the variable, a development certificate is reused while it covers the names asked for.
 */
describe('TLS files and the development certificate', { timeout: 60_000 }, () => {
  let dir: string;
  let a: { certFile: string; keyFile: string };
  let b: { certFile: string; keyFile: string };

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-tls-files-'));
    a = ensureDevCertificate(path.join(dir, 'a'), ['localhost', '127.0.0.1']);
    b = ensureDevCertificate(path.join(dir, 'b'), ['localhost']);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  test('TLS: a certificate and its own key load; the subject names are read', () => {
    const f = loadTlsFiles(a.certFile, a.keyFile);
    assert.match(f.subjectAltName, /DNS:localhost/);
    assert.match(f.subjectAltName, /IP Address:127\.0\.0\.1/);
    assert.ok(f.validTo.getTime() > Date.now() + 300 * 86_400_000);
  });

  test('TLS: a key of another certificate is refused, naming FERRY_TLS_KEY and without the key in the message', () => {
    assert.throws(() => loadTlsFiles(a.certFile, b.keyFile), (e: Error) => {
      assert.match(e.message, /^FERRY_TLS_KEY=.*unusable with/);
      assert.doesNotMatch(e.message, /PRIVATE KEY/);
      return true;
    });
  });

  test('TLS: a missing file, a non-PEM file and a certificate without its key are refused with one line each', () => {
    assert.throws(() => loadTlsFiles(path.join(dir, 'nope.pem'), a.keyFile), /^Error: FERRY_TLS_CERT=.*cannot read the certificate: ENOENT/);
    const junk = path.join(dir, 'junk.pem');
    writeFileSync(junk, 'hello');
    assert.throws(() => loadTlsFiles(junk, a.keyFile), /FERRY_TLS_CERT=.*not a PEM file/);
    assert.throws(() => tlsFilesFromEnv({ FERRY_TLS_CERT: a.certFile }), /must be set together/);
    assert.equal(tlsFilesFromEnv({}), undefined, 'neither set: no TLS');
  });

  test('TLS: the development certificate is reused while it covers the names, made again when a name is added; its key is 0600', () => {
    const again = ensureDevCertificate(path.join(dir, 'a'), ['localhost', '127.0.0.1']);
    assert.equal(again.created, false);
    const before = readFileSync(a.certFile);
    const more = ensureDevCertificate(path.join(dir, 'a'), ['localhost', '127.0.0.1', 'ferry.example.test']);
    assert.equal(more.created, true);
    assert.notDeepEqual(readFileSync(more.certFile), before);
    assert.match(loadTlsFiles(more.certFile, more.keyFile).subjectAltName, /DNS:ferry\.example\.test/);
    assert.equal(statSync(more.keyFile).mode & 0o777, 0o600);
  });

  test('TLS: ferry start\'s development certificate covers the address FERRY_HOST binds (the https:// address it prints), never a wildcard', () => {
    // FERRY_HOST=<a LAN address>: the page is printed as https://<that address>:3443/, so the certificate must name it
    const lan = setUpStartTls({ FERRY_DATA_DIR: path.join(dir, 'lan'), FERRY_HOST: '192.0.2.77' })!;
    assert.equal(lan.development, true);
    const lanNames = loadTlsFiles(lan.files.certFile, lan.files.keyFile).subjectAltName;
    assert.match(lanNames, /IP Address:192\.0\.2\.77/);
    assert.match(lanNames, /DNS:localhost/, 'the loopback names stay');
    // FERRY_HTTP_HOST / FERRY_SIP_HOST name the listeners' own addresses
    const split = setUpStartTls({ FERRY_DATA_DIR: path.join(dir, 'split'), FERRY_HOST: '192.0.2.78', FERRY_HTTP_HOST: '192.0.2.79' })!;
    const splitNames = loadTlsFiles(split.files.certFile, split.files.keyFile).subjectAltName;
    assert.match(splitNames, /IP Address:192\.0\.2\.79/, 'the HTTPS page\'s address');
    assert.match(splitNames, /IP Address:192\.0\.2\.78/, 'SIP/TLS on FERRY_HOST');
    // a wildcard is no name a client connects to
    const any = setUpStartTls({ FERRY_DATA_DIR: path.join(dir, 'any'), FERRY_HOST: '0.0.0.0' })!;
    const anyNames = loadTlsFiles(any.files.certFile, any.files.keyFile).subjectAltName;
    assert.doesNotMatch(anyNames, /0\.0\.0\.0/);
    assert.match(anyNames, /IP Address:127\.0\.0\.1/);
  });

  test('TLS: ferry start with an unreadable FERRY_TLS_CERT refuses to start in one line, before spawning anything', () => {
    const bin = path.join(__dirname, '..', '..', 'bin', 'ferry');
    const r = spawnSync(process.execPath, [bin, 'start'], {
      env: { ...process.env, NODE_ENV: 'test', FERRY_DATA_DIR: path.join(dir, 'data'), FERRY_TLS_CERT: path.join(dir, 'nope.pem'), FERRY_TLS_KEY: a.keyFile },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^ferry start: refusing to start: FERRY_TLS_CERT=.*nope\.pem: cannot read the certificate: ENOENT\n$/);
  });
});
