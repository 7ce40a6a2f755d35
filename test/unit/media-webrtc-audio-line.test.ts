import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'sdp-transform';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { readAudioLine, type AudioLine } from '../../src/media/webrtc/audio-line-reader';
import { pollUntil } from '../helpers/wait-for';
import { loopbackPeerConnection } from '../helpers/werift-loopback';

/**
 * readAudioLine (src/media/webrtc/audio-line-reader.ts) reads back the audio m-line of the SDP werift wrote with
 * a line scan instead of a full sdp-transform parse. It must read what sdp-transform reads: checked on SDPs werift
 * writes (offer and answer, with and without telephone-event) and on hand-written edge cases.
 */

/** The same fields, as the leg read them with sdp-transform before. */
function viaSdpTransform(sdp: string): AudioLine | undefined {
  const m = (parse(sdp).media ?? []).find((x) => x.type === 'audio' && Number(x.port) !== 0);
  if (!m) return undefined;
  const direction = (['sendrecv', 'sendonly', 'recvonly', 'inactive'] as const).find((d) => m.direction === d);
  return {
    payloads: String(m.payloads ?? '').split(/\s+/).filter((p) => p !== '').map(Number),
    names: new Map((m.rtp ?? []).map((r) => [r.payload, r.codec.toUpperCase()])),
    direction,
  };
}

const pcs: RTCPeerConnection[] = [];
after(async () => {
  for (const pc of pcs.splice(0)) await pc.close().catch(() => undefined);
});

test('on the SDP werift writes (offer and answer), the line scan reads what sdp-transform reads', { timeout: 30_000 }, async () => {
  const te = new RTCRtpCodecParameters({ mimeType: 'audio/telephone-event', clockRate: 8000, channels: 1, payloadType: 101, parameters: '0-16' });
  const g711 = (name: 'PCMU' | 'PCMA') => new RTCRtpCodecParameters({ mimeType: `audio/${name}`, clockRate: 8000, channels: 1, payloadType: name === 'PCMU' ? 0 : 8 });
  for (const codecs of [[g711('PCMA'), g711('PCMU'), te], [g711('PCMU')]]) {
    const a = loopbackPeerConnection();
    pcs.push(a);
    a.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
    const offer = await a.createOffer();
    const answerer = new RTCPeerConnection({ codecs: { audio: codecs, video: [] }, iceServers: [], iceUseIpv4: false, iceUseIpv6: false, iceAdditionalHostAddresses: ['127.0.0.1'], iceInterfaceAddresses: { udp4: '127.0.0.1' } });
    pcs.push(answerer);
    await answerer.setRemoteDescription(offer);
    await answerer.setLocalDescription(await answerer.createAnswer());
    await pollUntil(() => answerer.iceGatheringState === 'complete', { timeoutMs: 10_000, what: 'answerer gathered' });
    for (const sdp of [offer.sdp, answerer.localDescription!.sdp]) {
      const ours = readAudioLine(sdp);
      assert.ok(ours, 'an audio line was found');
      assert.ok(ours.payloads.length > 0);
      assert.deepEqual(ours, viaSdpTransform(sdp));
    }
  }
});

test('edge cases: a rejected audio line first, video first, each direction, static types without rtpmap, LF line ends', { timeout: 10_000 }, () => {
  const head = ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=sendonly'];
  const cases = [
    [...head, 'm=audio 0 UDP/TLS/RTP/SAVPF 0', 'a=rtpmap:0 PCMU/8000', 'a=inactive', 'm=audio 9 UDP/TLS/RTP/SAVPF 8 0 101', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:101 telephone-event/8000', 'a=recvonly'],
    [...head, 'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=rtpmap:96 VP8/90000', 'a=sendrecv', 'm=audio 9 UDP/TLS/RTP/SAVPF 0 8', 'a=sendonly'],
    [...head, 'm=audio 9 UDP/TLS/RTP/SAVPF 0', 'a=rtpmap:0 pcmu/8000', 'a=inactive', 'm=audio 9 UDP/TLS/RTP/SAVPF 8', 'a=rtpmap:8 PCMA/8000', 'a=sendrecv'],
    [...head, 'm=audio 9 UDP/TLS/RTP/SAVPF 0 8'],
    [...head, 'm=video 9 UDP/TLS/RTP/SAVPF 96'],
  ];
  for (const [i, lines] of cases.entries()) {
    for (const eol of ['\r\n', '\n']) {
      const sdp = `${lines.join(eol)}${eol}`;
      assert.deepEqual(readAudioLine(sdp), viaSdpTransform(sdp), `case ${i} (${eol === '\n' ? 'LF' : 'CRLF'})`);
    }
  }
  // positive control: the cases differ where they should
  const first = readAudioLine(`${cases[0]!.join('\r\n')}\r\n`)!;
  assert.deepEqual(first.payloads, [8, 0, 101], 'the rejected line is skipped');
  assert.equal(first.direction, 'recvonly', 'the line’s own direction, not the session’s');
  assert.equal(readAudioLine(`${cases[3]!.join('\r\n')}\r\n`)!.direction, undefined, 'no direction on the line: none (the leg takes sendrecv)');
  assert.equal(readAudioLine(`${cases[4]!.join('\r\n')}\r\n`), undefined, 'no audio line');
});
