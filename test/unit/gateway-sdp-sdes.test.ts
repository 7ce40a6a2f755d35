import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isWebRtc, requireUsableSdes, restrictCodecs, SdpError } from '../../src/gateway/calls/sdp-rewriter';

const KEY = Buffer.alloc(30, 1).toString('base64');
/** What baresip with mediaenc=srtp offers: RTP/SAVP, several suites, no DTLS fingerprint. */
const BARESIP_SRTP_OFFER = [
  'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0',
  'm=audio 10000 RTP/SAVP 0 8 101', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:101 telephone-event/8000',
  `a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:${KEY}`, `a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`, 'a=sendrecv', '',
].join('\r\n');

describe('gateway SDP: phone SRTP-SDES offers', { timeout: 30_000 }, () => {
  test('an RTP/SAVP(F) offer with a=crypto is a phone (RtpEndpoint), not WebRTC; DTLS offers still are WebRTC', () => {
    assert.equal(isWebRtc(BARESIP_SRTP_OFFER), false);
    assert.equal(isWebRtc(BARESIP_SRTP_OFFER.replace('RTP/SAVP', 'RTP/SAVPF')), false);
    const oldDtls = BARESIP_SRTP_OFFER.replace(/a=crypto:[^\r]*\r\n/g, '').replace('RTP/SAVP', 'RTP/SAVPF').replace('a=sendrecv', 'a=fingerprint:sha-256 AA:BB\r\na=sendrecv');
    assert.equal(isWebRtc(oldDtls), true);
    assert.equal(isWebRtc(BARESIP_SRTP_OFFER.replace('RTP/SAVP', 'UDP/TLS/RTP/SAVPF')), true);
  });

  test('restricting codecs keeps the profile and the a=crypto lines', () => {
    const out = restrictCodecs(BARESIP_SRTP_OFFER, ['PCMA']);
    assert.match(out, /^m=audio 10000 RTP\/SAVP 8 101\r$/m);
    assert.equal((out.match(/^a=crypto:/gm) ?? []).length, 2);
  });

  test('an SRTP offer without a usable SDES key is an SdpError naming the problem; a usable one and plain RTP pass', () => {
    assert.throws(() => requireUsableSdes(BARESIP_SRTP_OFFER.replace(/a=crypto:[^\r]*\r\n/g, '')), (e: unknown) => e instanceof SdpError && /without a=crypto/.test(e.message));
    assert.throws(
      () => requireUsableSdes(BARESIP_SRTP_OFFER.replace(/a=crypto:2[^\r]*\r\n/, '')),
      (e: unknown) => e instanceof SdpError && /AES_CM_128_HMAC_SHA1_32.*needed AES_CM_128_HMAC_SHA1_80/.test(e.message),
    );
    requireUsableSdes(BARESIP_SRTP_OFFER);
    requireUsableSdes(BARESIP_SRTP_OFFER.replace('RTP/SAVP', 'RTP/AVP').replace(/a=crypto:[^\r]*\r\n/g, ''));
  });
});
