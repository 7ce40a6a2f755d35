import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createVerify, generateKeyPairSync, randomBytes } from 'node:crypto';
import { dtlsCryptoCalls, p256PrivateKeyBytes, useNodeCryptoForDtls, weriftDtlsCryptoModules } from '../../src/media/webrtc/werift-internals';
import { LoopbackPeers } from '../helpers/werift-loopback';

/**
 * useNodeCryptoForDtls (werift-internals.ts) replaces werift 0.25.2's handshake public-key steps with
 * node:crypto. Pinned here on the installed werift: the module exports it replaces exist with the shapes used,
 * every replacement returns what werift's own function returns for the same keys (so the bytes on the wire and
 * the derived secrets are unchanged), and werift reaches the replacements during a real handshake (it reads the
 * exports at each call; a werift that bound them at import would leave the counters at zero).
 */

const modules = weriftDtlsCryptoModules();
// werift's own implementations, taken before the hook replaces them
const original = {
  generateKeyPair: modules.namedCurve.generateKeyPair.bind(modules.namedCurve),
  prfPreMasterSecret: modules.prf.prfPreMasterSecret.bind(modules.prf),
  signatureData: modules.cipherContext.CipherContext.prototype.signatureData,
  fidmSign: modules.fidmPrivateKey.prototype.sign,
};
const { secp256r1_23: P256, x25519_29: X25519 } = modules.constants.NamedCurveAlgorithm;

describe('useNodeCryptoForDtls: werift handshake crypto on node:crypto', { timeout: 60_000 }, () => {
  const peers = new LoopbackPeers();
  after(() => peers.closeAll());

  test('the werift shapes it replaces are there', () => {
    assert.equal(P256, 23, 'NamedCurveAlgorithm.secp256r1_23');
    assert.equal(X25519, 29, 'NamedCurveAlgorithm.x25519_29');
    assert.equal(typeof modules.namedCurve.generateKeyPair, 'function');
    assert.equal(typeof modules.prf.prfPreMasterSecret, 'function');
    assert.equal(typeof original.signatureData, 'function', 'CipherContext.prototype.signatureData');
    assert.equal(typeof original.fidmSign, 'function', '@fidm/x509 PrivateKey.prototype.sign');
    assert.equal(typeof modules.fidmPrivateKey._signers, 'object', '@fidm/x509 PrivateKey._signers');
    // werift's own key pairs: raw bytes of the sizes the replacements produce
    const p = original.generateKeyPair(P256);
    assert.equal(p.publicKey.length, 65, 'P-256 public key: uncompressed point');
    assert.equal(p.privateKey.length, 32);
    const x = original.generateKeyPair(X25519);
    assert.equal(x.publicKey.length, 32);
    assert.equal(x.privateKey.length, 32);
  });

  test('after install, each replacement agrees with werift’s own function on the same keys', () => {
    useNodeCryptoForDtls();
    assert.notEqual(modules.prf.prfPreMasterSecret, original.prfPreMasterSecret, 'positive control: the export was replaced');
    for (const curve of [P256, X25519]) {
      for (let i = 0; i < 20; i++) {
        // one side's pair from node:crypto, the other from werift's JavaScript: both directions must agree
        const ours = modules.namedCurve.generateKeyPair(curve);
        const theirs = original.generateKeyPair(curve);
        assert.equal(ours.curve, curve);
        assert.equal(ours.publicKey.length, theirs.publicKey.length, `curve ${curve}: public key size`);
        const a = modules.prf.prfPreMasterSecret(theirs.publicKey, ours.privateKey, curve);
        const b = original.prfPreMasterSecret(theirs.publicKey, ours.privateKey, curve);
        const c = original.prfPreMasterSecret(ours.publicKey, theirs.privateKey, curve);
        const d = modules.prf.prfPreMasterSecret(ours.publicKey, theirs.privateKey, curve);
        assert.equal(a.length, 32);
        assert.deepEqual(a, b, `curve ${curve}: our secret = werift's for the same keys`);
        assert.deepEqual(a, c, `curve ${curve}: both ends derive the same secret`);
        assert.deepEqual(a, d);
      }
    }
    // a curve the hook does not know goes to werift's own function (which throws for it)
    assert.throws(() => modules.namedCurve.generateKeyPair(0xfff0));
  });

  test('a P-256 private key is always 32 bytes, also when node:crypto drops its leading zero bytes', () => {
    useNodeCryptoForDtls();
    const short = Buffer.from('01'.repeat(31), 'hex');
    const padded = p256PrivateKeyBytes(short);
    assert.equal(padded.length, 32);
    assert.deepEqual(padded, Buffer.concat([Buffer.alloc(1), short]), 'the leading zero restored');
    const full = Buffer.alloc(32, 7);
    assert.equal(p256PrivateKeyBytes(full), full, 'a 32-byte key is passed through');
    // node:crypto returns a short key once in 256: 3000 pairs meet one with probability 1 - (255/256)^3000 > 0.99999
    let checked = 0;
    for (let i = 0; i < 3000; i++) {
      const ours = modules.namedCurve.generateKeyPair(P256);
      assert.equal(ours.privateKey.length, 32, 'P-256 private key size');
      if (ours.privateKey[0] !== 0) continue;
      // werift's own (@noble/curves) shared-secret step takes the key and agrees with ours
      const theirs = original.generateKeyPair(P256);
      assert.deepEqual(original.prfPreMasterSecret(theirs.publicKey, ours.privateKey, P256), modules.prf.prfPreMasterSecret(theirs.publicKey, ours.privateKey, P256));
      checked++;
    }
    assert.ok(checked > 0, 'positive control: keys with a leading zero byte were met and checked');
  });

  test('signatures made by the replacements verify with the certificate key', () => {
    useNodeCryptoForDtls();
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const fidmKey = (modules.fidmPrivateKey as unknown as { fromPEM(b: Buffer): object }).fromPEM(Buffer.from(pem));
    const data = randomBytes(300);
    const viaContext = modules.cipherContext.CipherContext.prototype.signatureData.call({ localPrivateKey: fidmKey as never }, data, 'sha256');
    const viaFidm = modules.fidmPrivateKey.prototype.sign.call(fidmKey as never, data, 'sha256');
    for (const sig of [viaContext, viaFidm]) assert.ok(createVerify('sha256').update(data).verify(publicKey, sig), 'signature verifies');
    // control: werift's own path verifies the same way, and a changed byte does not
    const theirs = original.fidmSign.call(fidmKey as never, data, 'sha256');
    assert.ok(createVerify('sha256').update(data).verify(publicKey, theirs));
    const other = Buffer.from(data);
    other[0] ^= 1;
    assert.equal(createVerify('sha256').update(other).verify(publicKey, viaFidm), false);
  });

  test('a real werift handshake runs on the replacements (both sides)', async () => {
    useNodeCryptoForDtls();
    const before = { ...dtlsCryptoCalls };
    await peers.connectedPair('both peer connections connected (DTLS done: the Finished messages agree only if both derived the same secret)');
    assert.ok(dtlsCryptoCalls.keyPairs - before.keyPairs >= 2, `an ECDHE key pair per side (${dtlsCryptoCalls.keyPairs - before.keyPairs})`);
    assert.ok(dtlsCryptoCalls.sharedSecrets - before.sharedSecrets >= 2, 'a shared secret per side');
    assert.ok(dtlsCryptoCalls.signatures - before.signatures >= 2, 'ServerKeyExchange and CertificateVerify signed');
  });
});
