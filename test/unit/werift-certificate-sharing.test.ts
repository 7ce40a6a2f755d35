import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { inspect } from 'node:util';
import { RTCCertificate, RTCDtlsTransport, type RTCPeerConnection } from 'werift';
import {
  compactDtlsBuffers,
  dtlsCertificateParses,
  shareParsedDtlsCertificate,
  useLazyDtlsCipherSummary,
  useNodeCryptoForDtls,
  type DtlsHelperModule,
  type ParsedCertificateHolder,
} from '../../src/media/webrtc/werift-internals';
import { LoopbackPeers } from '../helpers/werift-loopback';

/**
 * shareParsedDtlsCertificate and useLazyDtlsCipherSummary (werift-internals.ts) take per-call CPU out of a WebRTC
 * set-up. Pinned on the installed werift 0.25.2: every DTLS context of the process holds the same parsed
 * certificate and key, both ends of several calls still handshake with them, the a=fingerprint werift writes is
 * the certificate's SHA-256, compaction leaves the shared objects alone, and the cipher summary werift's debug
 * logging reads is computed only when formatted.
 */

interface CipherInternals extends ParsedCertificateHolder {
  cipher?: object;
}

const peers = new LoopbackPeers();
after(() => peers.closeAll());

/** Two werift peer connections of this process connected over loopback (ICE + DTLS). */
async function call(): Promise<{ a: RTCPeerConnection; b: RTCPeerConnection; offer: string }> {
  const { a, b } = await peers.connectedPair();
  return { a, b, offer: a.localDescription!.sdp };
}

function cipherOf(pc: RTCPeerConnection): CipherInternals {
  const dtls = (pc.dtlsTransports[0] as unknown as { dtls?: { cipher?: CipherInternals } }).dtls;
  assert.ok(dtls?.cipher, 'the DTLS socket has its CipherContext');
  return dtls.cipher;
}

describe('shareParsedDtlsCertificate: the DTLS certificate parsed once per process', { timeout: 90_000 }, () => {
  test('werift has the shapes: CipherContext.parseX509 and RTCCertificate.getFingerprints', () => {
    const proto = RTCCertificate.prototype as unknown as Record<string, unknown>;
    assert.equal(typeof proto.getFingerprints, 'function');
    const cipher = (require(require.resolve('werift').replace(/webrtc\/src\/index\.js$/, 'dtls/src/context/cipher.js')) as {
      CipherContext: { prototype: { parseX509: (...args: unknown[]) => void } };
    }).CipherContext;
    assert.equal(typeof cipher.prototype.parseX509, 'function');
    assert.equal(cipher.prototype.parseX509.length, 3, 'parseX509(certPem, keyPem, signatureHash)');
  });

  test('two calls (four peer connections) hold the same parsed certificate and key and all handshake; the fingerprint is the certificate’s SHA-256', async () => {
    useNodeCryptoForDtls();
    shareParsedDtlsCertificate(RTCCertificate);
    const before = { ...dtlsCertificateParses };
    const first = await call();
    const second = await call();
    const ciphers = [first.a, first.b, second.a, second.b].map(cipherOf);
    for (const c of ciphers.slice(1)) {
      assert.equal(c.localCert, ciphers[0]!.localCert, 'the same certificate DER object');
      assert.equal(c.localPrivateKey, ciphers[0]!.localPrivateKey, 'the same parsed key object');
    }
    assert.ok(dtlsCertificateParses.parsed - before.parsed <= 1, `parsed at most once (${dtlsCertificateParses.parsed - before.parsed})`);
    assert.ok(dtlsCertificateParses.shared - before.shared >= 3, `the other contexts shared it (${dtlsCertificateParses.shared - before.shared})`);
    assert.ok(dtlsCertificateParses.fingerprintsShared - before.fingerprintsShared >= 3, 'fingerprints answered from the cache');
    // what werift writes and signs with is the process's certificate, unchanged
    const certificate = RTCDtlsTransport.localCertificate;
    assert.ok(certificate, 'werift set up its process certificate');
    const der = new X509Certificate(certificate.certPem).raw;
    assert.deepEqual(Buffer.from(ciphers[0]!.localCert!), der, 'the shared DER is the certificate');
    const sha256 = createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
    for (const sdp of [first.offer, second.offer, second.b.localDescription!.sdp]) {
      assert.match(sdp, new RegExp(`a=fingerprint:sha-256 ${sha256}\\r\\n`), 'a=fingerprint is the SHA-256 of the certificate');
    }
    // each call gets its own fingerprint objects (werift may keep or change them)
    const f1 = certificate.getFingerprints();
    const f2 = certificate.getFingerprints();
    assert.notEqual(f1, f2);
    assert.notEqual(f1[0], f2[0]);
    assert.deepEqual({ ...f1[0] }, { ...f2[0] });
  });

  test('compaction after connect leaves the shared certificate and key where they are, and a later call still handshakes', async () => {
    useNodeCryptoForDtls();
    shareParsedDtlsCertificate(RTCCertificate);
    const one = await call();
    const shared = cipherOf(one.a);
    const cert = shared.localCert;
    const key = shared.localPrivateKey;
    compactDtlsBuffers(one.a.dtlsTransports[0]!);
    compactDtlsBuffers(one.b.dtlsTransports[0]!);
    assert.equal(cipherOf(one.a).localCert, cert, 'not replaced by a copy in this call’s block');
    assert.equal(cipherOf(one.b).localPrivateKey, key);
    const two = await call();
    assert.equal(cipherOf(two.a).localCert, cert, 'the next call shares the same objects');
    assert.equal(two.a.connectionState, 'connected');
  });
});

describe('useLazyDtlsCipherSummary: the cipher summary is computed only when formatted', { timeout: 60_000 }, () => {
  test('a handshake computes no summary; formatting one gives werift’s summary', async () => {
    const helperPath = require.resolve('werift').replace(/webrtc\/src\/index\.js$/, 'dtls/src/helper.js');
    const helper = require(helperPath) as DtlsHelperModule;
    const original = helper.getObjectSummary;
    let calls = 0;
    helper.getObjectSummary = (obj) => {
      calls++;
      return original(obj);
    };
    try {
      assert.equal(useLazyDtlsCipherSummary(), true, 'werift’s AEAD cipher has the summary getter');
      useNodeCryptoForDtls();
      const { a } = await call();
      assert.equal(calls, 0, 'no summary computed during the handshake');
      const cipher = cipherOf(a).cipher as { summary: unknown } | undefined;
      assert.ok(cipher, 'the record cipher exists once connected');
      // positive control: formatting it (what debug's %O does) computes werift's summary
      const text = inspect(cipher.summary);
      assert.equal(calls, 1);
      assert.equal(text, inspect(original(cipher)));
      assert.match(text, /clientWriteKey/, 'the summary names the cipher’s keys');
    } finally {
      helper.getObjectSummary = original;
    }
  });
});
