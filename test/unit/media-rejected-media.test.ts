import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'sdp-transform';
import { offerForStack, offerMLines, rejectOtherLines, writeRejectingAnswer } from '../../src/media/sdp/rejected-media';
import { rng } from '../helpers/seeded-random';

/** The pure port-0 answer functions (src/media/sdp/rejected-media.ts), and a seeded fuzz of them. */
const OFFER = [
  'v=0',
  'o=- 1 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1 2',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97',
  'c=IN IP4 0.0.0.0',
  'a=mid:0',
  'a=rtpmap:96 VP8/90000',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 0 8',
  'c=IN IP4 0.0.0.0',
  'a=mid:1',
  'a=rtpmap:0 PCMU/8000',
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
  'c=IN IP4 0.0.0.0',
  'a=mid:2',
  'a=sctp-port:5000',
  '',
].join('\r\n');

/** What a WebRTC stack might answer to OFFER: every line live and bundled. */
const STACK_ANSWER = [
  'v=0',
  'o=- 9 0 IN IP4 0.0.0.0',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1 2',
  'm=video 9 UDP/TLS/RTP/SAVPF 96',
  'a=mid:0',
  'm=audio 9 UDP/TLS/RTP/SAVPF 0',
  'c=IN IP4 0.0.0.0',
  'a=mid:1',
  'a=sendrecv',
  'a=rtpmap:0 PCMU/8000',
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
  'a=mid:2',
  '',
].join('\r\n');

describe('media: port-0 answers (rejected-media)', { timeout: 30_000 }, () => {
  test('offerMLines reads type, port, transport, formats and mid of every line', () => {
    assert.deepEqual(offerMLines(OFFER), [
      { type: 'video', port: 9, protocol: 'UDP/TLS/RTP/SAVPF', formats: ['96', '97'], mid: '0' },
      { type: 'audio', port: 9, protocol: 'UDP/TLS/RTP/SAVPF', formats: ['111', '0', '8'], mid: '1' },
      { type: 'application', port: 9, protocol: 'UDP/DTLS/SCTP', formats: ['webrtc-datachannel'], mid: '2' },
    ]);
  });

  test('offerForStack: the other lines at port 0 and out of BUNDLE; the kept line untouched', () => {
    const forStack = offerForStack(OFFER, 1);
    const media = parse(forStack).media;
    assert.deepEqual(media.map((m) => m.port), [0, 9, 0]);
    assert.match(forStack, /^a=group:BUNDLE 1\r$/m);
    assert.match(forStack, /^a=sctp-port:5000\r$/m, 'the rest of a rejected section is kept');
  });

  test('rejectOtherLines: the stack answer rewritten to one rejected form, BUNDLE = the kept mid', () => {
    const answer = rejectOtherLines(STACK_ANSWER, offerMLines(OFFER), 1);
    assert.equal(
      answer,
      [
        'v=0',
        'o=- 9 0 IN IP4 0.0.0.0',
        's=-',
        't=0 0',
        'a=group:BUNDLE 1',
        'm=video 0 UDP/TLS/RTP/SAVPF 96',
        'c=IN IP4 0.0.0.0',
        'a=mid:0',
        'm=audio 9 UDP/TLS/RTP/SAVPF 0',
        'c=IN IP4 0.0.0.0',
        'a=mid:1',
        'a=sendrecv',
        'a=rtpmap:0 PCMU/8000',
        'm=application 0 UDP/DTLS/SCTP webrtc-datachannel',
        'c=IN IP4 0.0.0.0',
        'a=mid:2',
        '',
      ].join('\r\n'),
    );
  });

  test('writeRejectingAnswer: every line port 0 with its first format and mid, no group', () => {
    const answer = writeRejectingAnswer({ sessionId: '7', version: 0, address: '0.0.0.0', mlines: offerMLines(OFFER) });
    const media = parse(answer).media;
    assert.deepEqual(media.map((m) => [m.type, m.port, m.protocol, String(m.payloads), String(m.mid)]), [
      ['video', 0, 'UDP/TLS/RTP/SAVPF', '96', '0'],
      ['audio', 0, 'UDP/TLS/RTP/SAVPF', '111', '1'],
      ['application', 0, 'UDP/DTLS/SCTP', 'webrtc-datachannel', '2'],
    ]);
    assert.doesNotMatch(answer, /a=group/);
    assert.match(writeRejectingAnswer({ sessionId: '7', version: 0, address: '::1', mlines: [] }), /^c=IN IP6 ::1\r$/m);
  });

  test('seeded fuzz: 5000 mutated offers: the three functions never throw and answer exactly the offered m-lines', () => {
    const r = rng(0x0b0e);
    const pieces = ['m=', 'm=video', ' 0 ', 'a=mid:', 'a=group:BUNDLE', '\r\n', '\n', '\r', ' ', '/', 'x', '99999', 'a=mid:7 8'];
    for (let i = 0; i < 5000; i++) {
      let s = OFFER;
      for (let k = 0; k < 1 + Math.floor(r() * 4); k++) {
        const at = Math.floor(r() * s.length);
        s = r() < 0.5 ? s.slice(0, at) + pieces[Math.floor(r() * pieces.length)]! + s.slice(at) : s.slice(0, at) + s.slice(at + 1 + Math.floor(r() * 8));
      }
      const lines = offerMLines(s);
      const kept = lines.length === 0 ? 0 : Math.floor(r() * lines.length);
      const count = (text: string) => text.split(/\r\n|\r|\n/).filter((l) => l.startsWith('m=')).length;
      assert.equal(count(offerForStack(s, kept)), lines.length, `mutation ${i}: offerForStack`);
      assert.equal(count(rejectOtherLines(STACK_ANSWER, lines, kept)), lines.length, `mutation ${i}: rejectOtherLines`);
      assert.equal(count(writeRejectingAnswer({ sessionId: '1', version: 0, address: '0.0.0.0', mlines: lines })), lines.length, `mutation ${i}: writeRejectingAnswer`);
    }
  });
});
