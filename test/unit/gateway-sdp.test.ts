import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  answerDirection, bumpVersion, chosenCodec, direction, g711Codecs, isWebRtc, restrictCodecs, SdpError, withCandidates, withDirection,
} from '../../src/gateway/calls/sdp-rewriter';

const CHROME_OFFER = [
  'v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'a=msid-semantic: WMS',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126', 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0',
  'a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0',
  'a=ice-ufrag:abcd', 'a=ice-pwd:0123456789abcdefghijklmn', 'a=fingerprint:sha-256 AA:BB', 'a=setup:actpass', 'a=mid:0', 'a=sendrecv', 'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2', 'a=rtcp-fb:111 transport-cc', 'a=fmtp:111 minptime=10;useinbandfec=1', 'a=rtpmap:63 red/48000/2', 'a=fmtp:63 111/111',
  'a=rtpmap:9 G722/8000', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:13 CN/8000', 'a=rtpmap:110 telephone-event/48000', 'a=rtpmap:126 telephone-event/8000',
  '',
].join('\r\n');

const PHONE_OFFER = ['v=0', 'o=sipp 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 6000 RTP/AVP 8 0 101', 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv', ''].join('\r\n');

describe('SDP rewriting', () => {
  test('a browser offer is cut down to G.711 + 8 kHz telephone-event, keeping ICE/DTLS', { timeout: 30_000 }, () => {
    const out = restrictCodecs(CHROME_OFFER, ['PCMA', 'PCMU']);
    assert.match(out, /^m=audio 9 UDP\/TLS\/RTP\/SAVPF 8 0 126\r$/m);
    assert.doesNotMatch(out, /opus|G722|red\/|CN\/|telephone-event\/48000|transport-cc|minptime/);
    assert.match(out, /a=fingerprint:sha-256 AA:BB/);
    assert.match(out, /a=candidate:1 1 udp/);
    assert.deepEqual(g711Codecs(out), ['PCMA', 'PCMU']);
    assert.equal(isWebRtc(out), true);
    assert.equal(isWebRtc(PHONE_OFFER), false);
  });

  test('static payload types without rtpmap are recognised', { timeout: 30_000 }, () => {
    assert.deepEqual(g711Codecs(PHONE_OFFER), ['PCMA', 'PCMU']);
    assert.equal(chosenCodec(PHONE_OFFER), 'PCMA');
    const only = restrictCodecs(PHONE_OFFER, ['PCMU']);
    assert.match(only, /^m=audio 6000 RTP\/AVP 0 101\r$/m);
  });

  test('no common codec is a clear SdpError', { timeout: 30_000 }, () => {
    const opusOnly = CHROME_OFFER.replace('111 63 9 0 8 13 110 126', '111').replace(/a=rtpmap:(0|8) .*\r\n/g, '');
    assert.throws(() => restrictCodecs(opusOnly, ['PCMU', 'PCMA']), (e: unknown) => e instanceof SdpError && /no common codec/.test(e.message));
    assert.throws(() => restrictCodecs('hello', ['PCMU']), /not an SDP body/);
    assert.throws(() => chosenCodec('v=0\r\nm=video 9 RTP/AVP 96\r\n'), /no active audio/);
  });

  test('directions: read, written, answered, and c=0.0.0.0 hold', { timeout: 30_000 }, () => {
    assert.equal(direction(PHONE_OFFER), 'sendrecv');
    const held = withDirection(PHONE_OFFER, 'sendonly');
    assert.equal(direction(held), 'sendonly');
    assert.equal((held.match(/a=(sendonly|sendrecv|recvonly|inactive)/g) ?? []).length, 1);
    assert.equal(answerDirection('sendonly'), 'recvonly');
    assert.equal(answerDirection('recvonly'), 'sendonly');
    assert.equal(answerDirection('inactive'), 'inactive');
    assert.equal(direction(PHONE_OFFER.replace('c=IN IP4 127.0.0.1', 'c=IN IP4 0.0.0.0')), 'sendonly');
    assert.match(bumpVersion(PHONE_OFFER), /^o=sipp 1 2 IN IP4/m);
  });

  test('ICE candidates are added once, with end-of-candidates', { timeout: 30_000 }, () => {
    const base = CHROME_OFFER.replace(/a=candidate:.*\r\n/, '');
    const c = 'candidate:7 1 udp 2116026367 127.0.0.1 40258 typ host generation 0';
    const once = withCandidates(base, [c, `a=${c}`]);
    assert.equal((once.match(/a=candidate:7 /g) ?? []).length, 1);
    assert.match(once, /a=end-of-candidates/);
  });

  test('fuzz: mutated SDP never throws anything but SdpError (seeded)', { timeout: 30_000 }, () => {
    let seed = 42;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
    const samples = [CHROME_OFFER, PHONE_OFFER];
    const junk = ['\r\n', ' ', 'm=', 'a=rtpmap:', '0', '8', ':', '/', 'c=IN IP4 ', 'sendonly', '\u0000', 'x'];
    for (let i = 0; i < 3000; i++) {
      const src = samples[i % 2]!;
      let s = src;
      for (let k = 0; k < 1 + rnd(5); k++) {
        const at = rnd(s.length);
        const op = rnd(3);
        if (op === 0) s = s.slice(0, at) + s.slice(at + 1 + rnd(20));
        else if (op === 1) s = s.slice(0, at) + junk[rnd(junk.length)] + s.slice(at);
        else s = s.slice(0, at) + s.slice(at).split('\r\n').slice(1).join('\r\n');
      }
      for (const fn of [() => restrictCodecs(s, ['PCMU', 'PCMA']), () => direction(s), () => g711Codecs(s), () => withDirection(s, 'sendonly'), () => isWebRtc(s)]) {
        try {
          fn();
        } catch (err) {
          assert.ok(err instanceof SdpError, `non-SdpError ${String(err)} on ${JSON.stringify(s).slice(0, 200)}`);
        }
      }
    }
  });
});
