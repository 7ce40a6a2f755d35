import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseSdesCrypto, formatSdesCrypto, newSrtpMaster } from '../../src/media/srtp/sdes-crypto';
import { parseRemoteAudio, writeAudioSdp } from '../../src/media/sdp/rtp-audio-sdp';
import { KurentoErrors } from '../../src/media/errors/kurento-error';

const KEY = Buffer.from(Array.from({ length: 30 }, (_, i) => i)).toString('base64');
const line = (id: number, suite: string, config: string, sessionConfig?: string) => ({ id, suite, config, sessionConfig });

describe('SDES a=crypto (RFC 4568)', { timeout: 30_000 }, () => {
  test('picks the first AES_CM_128_HMAC_SHA1_80 line, skipping other suites, and reads key and salt', () => {
    const c = chooseSdesCrypto([line(1, 'AES_CM_128_HMAC_SHA1_32', `inline:${KEY}`), line(7, 'AES_CM_128_HMAC_SHA1_80', `inline:${KEY}|2^31`)]);
    assert.ok(!('problem' in c));
    assert.equal(c.tag, 7);
    assert.deepEqual([...c.master.masterKey], Array.from({ length: 16 }, (_, i) => i));
    assert.deepEqual([...c.master.masterSalt], Array.from({ length: 14 }, (_, i) => i + 16));
  });

  test('lifetime is accepted (decimal or power of two), window size hint too', () => {
    for (const cfg of [`inline:${KEY}|1048576`, `inline:${KEY}|2^20`]) assert.ok(!('problem' in chooseSdesCrypto([line(1, 'AES_CM_128_HMAC_SHA1_80', cfg)])), cfg);
    assert.ok(!('problem' in chooseSdesCrypto([line(1, 'AES_CM_128_HMAC_SHA1_80', `inline:${KEY}`, 'WSH=128')])));
  });

  test('MKI, several keys, wrong key length, bad base64 and transform-changing session parameters are refused with the reason', () => {
    const cases: [string, ReturnType<typeof line>, RegExp][] = [
      ['MKI', line(1, 'AES_CM_128_HMAC_SHA1_80', `inline:${KEY}|2^20|1:4`), /MKI/],
      ['MKI without lifetime', line(1, 'AES_CM_128_HMAC_SHA1_80', `inline:${KEY}|1:4`), /MKI/],
      ['two keys', line(1, 'AES_CM_128_HMAC_SHA1_80', `inline:${KEY}|2^20|1:4;inline:${KEY}|2^20|2:4`), /several keys/],
      ['short key', line(1, 'AES_CM_128_HMAC_SHA1_80', `inline:${KEY.slice(0, 24)}`), /bytes/],
      ['not inline', line(1, 'AES_CM_128_HMAC_SHA1_80', `uri:http://x`), /inline/],
      ['KDR', line(1, 'AES_CM_128_HMAC_SHA1_80', `inline:${KEY}`, 'KDR=10'), /session parameters/],
      ['unencrypted', line(1, 'AES_CM_128_HMAC_SHA1_80', `inline:${KEY}`, 'UNENCRYPTED_SRTP'), /session parameters/],
      ['other suite only', line(1, 'AEAD_AES_256_GCM', `inline:${KEY}`), /not supported/],
    ];
    for (const [what, l, reason] of cases) {
      const c = chooseSdesCrypto([l]);
      assert.ok('problem' in c, what);
      assert.match(c.problem, reason, what);
    }
    assert.match((chooseSdesCrypto([]) as { problem: string }).problem, /no a=crypto/);
  });

  test('our attribute round-trips through the SDP writer and parser', () => {
    const master = newSrtpMaster();
    const sdp = writeAudioSdp({
      sessionId: '1', version: 0, address: '127.0.0.1', port: 4000, rtcpPort: undefined, rtcpMux: true, profile: 'RTP/SAVP',
      codecs: [{ pt: 0, key: 'pcmu/8000', name: 'PCMU', rate: 8000, fmtp: undefined }], direction: 'sendrecv', crypto: formatSdesCrypto(3, master),
    });
    const parsed = parseRemoteAudio(sdp, 'offer', KurentoErrors.sdpProcessOffer);
    assert.equal(parsed.profile, 'RTP/SAVP');
    const c = chooseSdesCrypto(parsed.crypto);
    assert.ok(!('problem' in c));
    assert.equal(c.tag, 3);
    assert.ok(c.master.masterKey.equals(master.masterKey) && c.master.masterSalt.equals(master.masterSalt));
  });
});
