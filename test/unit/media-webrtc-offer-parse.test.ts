import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, write } from 'sdp-transform';
import { offerForStack } from '../../src/media/sdp/rejected-media';
import { checkRemoteSdp, parseRemoteSdp, restrictOfferCodecs, webRtcOfferPlan, type RemoteAudioOffer } from '../../src/media/webrtc/remote-sdp-check';

/**
 * A browser's offer is parsed once on its way into a WebRtcEndpoint (remote-sdp-check.ts): webRtcOfferPlan,
 * checkRemoteSdp and restrictOfferCodecs share one read-only parse. Pinned: they do share it, restrictOfferCodecs
 * changes nothing in it (a later reader sees the offer as sent), and what it hands the stack is restricted as before.
 */

function chromiumOffer(sessionId: string): string {
  return [
    'v=0',
    `o=- ${sessionId} 2 IN IP4 127.0.0.1`,
    's=-',
    't=0 0',
    'a=group:BUNDLE 0 1',
    'a=msid-semantic: WMS',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 110 126',
    'c=IN IP4 0.0.0.0',
    'a=rtcp:9 IN IP4 0.0.0.0',
    'a=candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host generation 0',
    'a=candidate:2 1 udp 2122260223 3f1b2c3d-1111-2222-3333-444455556666.local 50001 typ host generation 0',
    'a=ice-ufrag:abcd',
    'a=ice-pwd:abcdefghijklmnopqrstuvwx',
    'a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99',
    'a=setup:actpass',
    'a=mid:0',
    'a=sendrecv',
    'a=rtcp-mux',
    'a=rtpmap:111 opus/48000/2',
    'a=rtcp-fb:111 transport-cc',
    'a=fmtp:111 minptime=10;useinbandfec=1',
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:110 telephone-event/48000',
    'a=rtpmap:126 telephone-event/8000',
    'a=fmtp:126 0-15',
    'm=video 9 UDP/TLS/RTP/SAVPF 96',
    'c=IN IP4 0.0.0.0',
    'a=mid:1',
    'a=rtpmap:96 VP8/90000',
    '',
  ].join('\r\n');
}

test('the offer is parsed once and shared by webRtcOfferPlan, checkRemoteSdp and restrictOfferCodecs', { timeout: 10_000 }, () => {
  const offer = chromiumOffer('4611731400430051336');
  const plan = webRtcOfferPlan(offer);
  assert.equal(plan.carried, 0);
  const shared = parseRemoteSdp(offer);
  assert.equal(parseRemoteSdp(offer), shared, 'the same parse, not a new one');
  // positive control: another offer is parsed anew, and the first one again after it
  const other = chromiumOffer('4611731400430051337');
  assert.notEqual(parseRemoteSdp(other), shared);
  assert.notEqual(parseRemoteSdp(offer), shared, 'only the last parse is kept');
});

test('restrictOfferCodecs changes nothing in the shared parse, and restricts what the stack gets as before', { timeout: 10_000 }, () => {
  const offer = chromiumOffer('5611731400430051336');
  const before = checkRemoteSdp(offer, 'process-offer');
  const shared = parseRemoteSdp(offer);
  const pristine = structuredClone(shared);
  const forStack = restrictOfferCodecs(offer, before, 'PCMU', shared);
  assert.deepEqual(shared, pristine, 'the shared parse is as parsed');
  assert.deepEqual(shared, parse(offer), 'and as a fresh parse of the offer');
  assert.deepEqual(checkRemoteSdp(offer, 'process-offer'), before, 'a later check reads the offer as sent');

  const stack = parse(forStack);
  const audio = stack.media[0]!;
  assert.equal(String(audio.payloads), '0 126', 'only the chosen G.711 and telephone-event/8000');
  assert.deepEqual(audio.rtp.map((r) => r.payload), [0, 126]);
  assert.deepEqual((audio.fmtp ?? []).map((f) => f.payload), [126]);
  assert.deepEqual(audio.rtcpFb ?? [], [], 'the opus feedback line went with opus');
  assert.deepEqual((audio.candidates ?? []).map((c) => c.ip), ['192.0.2.10'], 'the mDNS candidate is dropped');
  assert.equal(stack.media[1]!.port, 0, 'the video line is rejected for the stack');
  // the original keeps everything (control: the restriction did remove things above)
  assert.equal(shared.media[0]!.candidates?.length, 2);
  assert.equal(String(shared.media[0]!.payloads), '111 0 8 110 126');

  // without the parse handed in, the same result (it is parsed, or taken from the last parse)
  assert.equal(restrictOfferCodecs(offer, before, 'PCMU'), forStack);
});

/** The restriction as it was done before, through sdp-transform (parse, change, write): the reference. */
function restrictedByRewrite(offer: string, audio: RemoteAudioOffer, codec: 'PCMU' | 'PCMA'): string {
  const session = parse(offer);
  const m = session.media[audio.mLineIndex]!;
  const keep = new Set<number>([codec === 'PCMU' ? 0 : 8]);
  if (audio.telephoneEvent !== undefined) keep.add(audio.telephoneEvent);
  m.payloads = [...keep].join(' ');
  m.rtp = (m.rtp ?? []).filter((r) => keep.has(r.payload));
  if (m.fmtp) m.fmtp = m.fmtp.filter((f) => keep.has(f.payload));
  if (m.rtcpFb) m.rtcpFb = m.rtcpFb.filter((f) => f.payload === '*' || keep.has(Number(f.payload)));
  for (const x of session.media) if (x.candidates) x.candidates = x.candidates.filter((c) => !/\.local\.?$/i.test(String(c.ip)));
  return offerForStack(write(session), audio.mLineIndex);
}

test('the line-based restriction says what the parse-and-write one said (offers from Chromium, Firefox, odd ones)', { timeout: 10_000 }, () => {
  const chromium = chromiumOffer('6611731400430051336');
  const firefox = [
    'v=0', 'o=mozilla...THIS_IS_SDPARTA-99.0 1 0 IN IP4 0.0.0.0', 's=-', 't=0 0',
    'a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99',
    'a=group:BUNDLE 0', 'a=ice-options:trickle', 'a=msid-semantic:WMS *',
    'm=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101', 'c=IN IP4 0.0.0.0', 'a=sendrecv',
    'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level', 'a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1',
    'a=fmtp:101 0-15', 'a=ice-pwd:abcdefghijklmnopqrstuvwx', 'a=ice-ufrag:abcd', 'a=mid:0', 'a=rtcp-mux',
    'a=rtpmap:109 opus/48000/2', 'a=rtpmap:9 G722/8000/1', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:101 telephone-event/8000', 'a=rtcp-fb:* nack', 'a=setup:actpass', 'a=ssrc:1234 cname:{x}', '',
  ].join('\r\n');
  // LF line ends, a stray non-SDP line, an mDNS candidate on the second (rejected) line too
  const odd = chromium.replace(/\r\n/g, '\n').replace('a=rtcp-mux\n', 'a=rtcp-mux\n  \nnot an sdp line\n') + 'a=candidate:3 1 udp 1 abc.local 9 typ host\n';
  for (const [name, offer] of [['chromium', chromium], ['firefox', firefox], ['odd', odd]] as const) {
    const audio = checkRemoteSdp(offer, 'process-offer');
    for (const codec of ['PCMU', 'PCMA'] as const) {
      const ours = restrictOfferCodecs(offer, audio, codec);
      const reference = restrictedByRewrite(offer, audio, codec);
      assert.deepEqual(parse(ours), parse(reference), `${name} ${codec}: the same SDP to the stack`);
      assert.ok(ours.endsWith('\r\n') && !/[^\r]\n/.test(ours), `${name}: CRLF line ends`);
      assert.doesNotMatch(ours, /\.local/, `${name}: no mDNS candidate left`);
    }
  }
});
