import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KurentoError, KurentoErrors } from '../../src/media/errors/kurento-error';
import { answerCodecs, offerCodecs, parseRemoteAudio, writeAudioSdp } from '../../src/media/sdp/rtp-audio-sdp';
import { rng } from '../helpers/seeded-random';

const PHONE_OFFER = [
  'v=0',
  'o=- 3748 3748 IN IP4 192.168.1.20',
  's=SIP Call',
  'c=IN IP4 192.168.1.20',
  't=0 0',
  'm=audio 16384 RTP/AVP 8 0 18 101',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:18 G729/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-15',
  'a=ptime:20',
  'a=sendrecv',
  'm=video 0 RTP/AVP 96',
  '',
].join('\r\n');

describe('media: RTP SDP parsing and writing', () => {
  test('a phone offer: PCMA first, telephone-event, RTCP on port+1, rejected video kept in the answer', { timeout: 30_000 }, () => {
    const r = parseRemoteAudio(PHONE_OFFER, 'offer', KurentoErrors.sdpProcessOffer);
    assert.equal(r.address, '192.168.1.20');
    assert.equal(r.port, 16384);
    assert.equal(r.rtcpPort, 16385);
    assert.equal(r.rtcpMux, false);
    assert.deepEqual(r.codecs.map((c) => [c.pt, c.key]), [[8, 'pcma/8000'], [0, 'pcmu/8000'], [101, 'telephone-event/8000']]);
    const codecs = answerCodecs(r.codecs, []);
    assert.deepEqual(codecs.map((c) => c.pt), [8, 101]);
    const pref = answerCodecs(r.codecs, ['pcmu/8000']);
    assert.deepEqual(pref.map((c) => c.pt), [0, 101], 'a connected source that negotiated PCMU wins');
    const answer = writeAudioSdp({ sessionId: '1', version: 0, address: '127.0.0.1', port: 40000, rtcpPort: 40001, rtcpMux: false, profile: r.profile, codecs, direction: 'sendrecv', mirror: { mlines: r.mlines, index: r.index } });
    assert.match(answer, /^m=audio 40000 RTP\/AVP 8 101\r$/m);
    assert.match(answer, /^a=rtcp:40001\r$/m);
    assert.match(answer, /^a=fmtp:101 0-15\r$/m);
    assert.match(answer, /^m=video 0 RTP\/AVP 96\r$/m);
    // our answer parses back
    const back = parseRemoteAudio(answer, 'answer', KurentoErrors.sdpProcessAnswer);
    assert.deepEqual(back.codecs.map((c) => c.pt), [8, 101]);
  });

  test('AVPF, rtcp-mux, hold directions and static payload types without rtpmap', { timeout: 30_000 }, () => {
    const sdp = 'v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 5004 RTP/AVPF 0\r\nc=IN IP4 10.0.0.2\r\na=rtcp-mux\r\na=sendonly\r\n';
    const r = parseRemoteAudio(sdp, 'offer', KurentoErrors.sdpProcessOffer);
    assert.equal(r.profile, 'RTP/AVPF');
    assert.equal(r.address, '10.0.0.2', 'media-level c= wins');
    assert.equal(r.rtcpMux, true);
    assert.equal(r.rtcpPort, 5004);
    assert.equal(r.direction, 'sendonly');
    assert.deepEqual(r.codecs.map((c) => c.key), ['pcmu/8000']);
    assert.deepEqual(offerCodecs(['pcma/8000']).map((c) => c.pt), [8, 0, 101]);
  });

  const bad: [string, unknown, number][] = [
    ['empty', '', 40201],
    ['not a string', 42, 40201],
    ['no v=', 'o=- 1 1 IN IP4 1.2.3.4\r\n', 40201],
    ['no m=', 'v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n', 40201],
    ['no c=', 'v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n', 40201],
    ['bad c=', 'v=0\r\ns=-\r\nc=IN IP4 not-an-ip\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n', 40201],
    ['video only', 'v=0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n', 40205],
    ['DTLS-SRTP profile (WebRTC, not a phone)', 'v=0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 UDP/TLS/RTP/SAVPF 0\r\n', 40205],
    ['rejected audio', 'v=0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n', 40205],
    ['bad port', 'v=0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n', 40201],
    ['bad pt', 'v=0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 300\r\n', 40201],
  ];
  for (const [name, sdp, code] of bad) {
    test(`bad SDP (${name}) -> KurentoError ${code}`, { timeout: 30_000 }, () => {
      assert.throws(() => parseRemoteAudio(sdp, 'offer', KurentoErrors.sdpProcessOffer), (e: unknown) => e instanceof KurentoError && e.code === code);
    });
  }

  test('seeded fuzz: 20000 mutations of valid SDPs either parse to a sane result or throw a KurentoError, never anything else', { timeout: 30_000 }, () => {
    const r = rng(4733);
    const samples = [PHONE_OFFER, 'v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 5004 RTP/AVPF 0 8 96\r\nc=IN IP4 10.0.0.2\r\na=rtpmap:96 telephone-event/8000\r\na=rtcp:6000 IN IP4 10.0.0.3\r\na=inactive\r\n'];
    const tokens = ['\r\n', 'm=audio ', 'c=IN IP4 ', 'a=rtcp:', 'a=rtpmap:', ' ', '0', '65536', '-1', 'RTP/AVP', 'a=rtcp-mux', '\n', '=', 'IP6 ::1', 'a=fmtp:'];
    let parsed = 0;
    let rejected = 0;
    for (let i = 0; i < 20000; i++) {
      let s = samples[Math.floor(r() * samples.length)]!;
      const n = 1 + Math.floor(r() * 5);
      for (let k = 0; k < n; k++) {
        const at = Math.floor(r() * s.length);
        const op = r();
        if (op < 0.3) s = s.slice(0, at) + s.slice(at + 1 + Math.floor(r() * 10));
        else if (op < 0.6) s = s.slice(0, at) + tokens[Math.floor(r() * tokens.length)] + s.slice(at);
        else s = s.slice(0, at) + String.fromCharCode(Math.floor(r() * 256)) + s.slice(at + 1);
      }
      try {
        const res = parseRemoteAudio(s, 'offer', KurentoErrors.sdpProcessOffer);
        parsed++;
        assert.ok(res.port > 0 && res.port <= 65535, `port ${res.port}`);
        assert.ok(res.rtcpPort > 0 && res.rtcpPort <= 65535, `rtcp port ${res.rtcpPort}`);
        assert.ok(res.codecs.every((c) => c.pt >= 0 && c.pt <= 127));
        assert.ok(res.address.length > 0);
      } catch (e) {
        if (!(e instanceof KurentoError)) throw new Error(`mutation ${i} threw ${String(e)}:\n${JSON.stringify(s)}`);
        assert.ok(e.code >= 40200 && e.code <= 40210, `SDP error code, got ${e.code}`);
        rejected++;
      }
    }
    assert.ok(parsed > 1000 && rejected > 1000, `both outcomes exercised (parsed ${parsed}, rejected ${rejected})`);
  });
});
