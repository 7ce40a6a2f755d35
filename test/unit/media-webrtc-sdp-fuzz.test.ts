import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'sdp-transform';
import { FakeClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { KurentoError } from '../../src/media/errors/kurento-error';
import { loadMediaConfig } from '../../src/media/server/media-config';
import { PortAllocator } from '../../src/media/rtp/port-allocator';
import { WebRtcEndpoint } from '../../src/media/objects/webrtc-endpoint';
import type { ObjectHost } from '../../src/media/objects/object-context';
import { checkRemoteSdp, isMdnsCandidate, restrictOfferCodecs } from '../../src/media/webrtc/remote-sdp-check';
import { rng } from '../helpers/seeded-random';

/**
 * Seeded mutation fuzz of WebRtcEndpoint.processOffer over real browser offers: every mutated offer
 * either gets a usable sendrecv G.711 answer or a Kurento SDP error (402xx / 40001), never a crash, a
 * hang or an unhandled rejection, and every endpoint frees its UDP ports on release.
 * The ObjectHost is a recording stand-in for ferry media's registry (named as such: only events are kept).
 */

// A Chromium 156 offer (audio only, fake microphone), as captured on this machine's loopback.
const CHROMIUM_OFFER = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0',
  'a=extmap-allow-mixed',
  'a=msid-semantic: WMS 3b1f0c8e-0d6f-4c43-9b0e-6f1a2f1d3c11',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126',
  'c=IN IP4 0.0.0.0',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=ice-ufrag:Vq3n',
  'a=ice-pwd:0dV3yMqA0Qh1p0sY5rQ0vZkW',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 1C:9A:41:6E:7F:06:42:B4:0E:DB:3A:77:85:38:6E:1F:8D:0A:5B:C2:4E:93:12:7A:AC:51:E4:0F:3B:68:24:D9',
  'a=setup:actpass',
  'a=mid:0',
  'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level',
  'a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
  'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
  'a=sendrecv',
  'a=msid:3b1f0c8e-0d6f-4c43-9b0e-6f1a2f1d3c11 8d8f2a36-6c41-4e4f-8f0b-3c7a0f4b2e55',
  'a=rtcp-mux',
  'a=rtcp-rsize',
  'a=rtpmap:111 opus/48000/2',
  'a=rtcp-fb:111 transport-cc',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'a=rtpmap:63 red/48000/2',
  'a=fmtp:63 111/111',
  'a=rtpmap:9 G722/8000',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:13 CN/8000',
  'a=rtpmap:110 telephone-event/48000',
  'a=rtpmap:126 telephone-event/8000',
  'a=ssrc:2779512345 cname:kR2bq4yVt0o3u1Yk',
  'a=ssrc:2779512345 msid:3b1f0c8e-0d6f-4c43-9b0e-6f1a2f1d3c11 8d8f2a36-6c41-4e4f-8f0b-3c7a0f4b2e55',
  '',
].join('\r\n');

function mutate(sdp: string, r: () => number): string {
  const lines = sdp.split('\r\n');
  const pick = () => Math.floor(r() * lines.length);
  const garbage = ['', '=', 'a=', 'm=audio', 'a=rtpmap:0', 'a=fingerprint:sha-256 ZZ', 'a=setup:holdconn', 'm=video 9 UDP/TLS/RTP/SAVPF 96',
    'a=candidate:1 1 udp 1 127.0.0.1 1 typ host', 'c=IN IP4 999.1.1.1', 'a=ice-ufrag:', 'a=mid:', '\u0000\u00ff', 'a=rtcp-mux', 'a=inactive', 'a=recvonly', 'a=sendonly'];
  const n = 1 + Math.floor(r() * 3);
  for (let k = 0; k < n; k++) {
    const op = Math.floor(r() * 7);
    const i = pick();
    switch (op) {
      case 0: lines.splice(i, 1); break;
      case 1: lines.splice(i, 0, lines[i] ?? ''); break;
      case 2: lines.splice(i, 0, garbage[Math.floor(r() * garbage.length)]!); break;
      case 3: { // flip a character
        const l = lines[i] ?? '';
        const j = Math.floor(r() * Math.max(1, l.length));
        lines[i] = l.slice(0, j) + String.fromCharCode(32 + Math.floor(r() * 95)) + l.slice(j + 1);
        break;
      }
      case 4: { // change a number
        lines[i] = (lines[i] ?? '').replace(/\d+/, String(Math.floor(r() * 70000)));
        break;
      }
      case 5: lines[i] = (lines[i] ?? '').slice(0, Math.floor(r() * (lines[i] ?? '').length)); break;
      default: { const j = pick(); const t = lines[i]!; lines[i] = lines[j]!; lines[j] = t; }
    }
  }
  return r() < 0.1 ? lines.join('\n') : lines.join('\r\n');
}

class RecordingHost implements ObjectHost {
  events: string[] = [];
  emitEvent(_id: string, type: string): void {
    this.events.push(type);
  }
  lookup(): unknown {
    return undefined;
  }
  legEnded(): void {}
}

const config = loadMediaConfig({ port: 0 });
const ports = new PortAllocator('127.0.0.1', 0, 0);
const logger = createLogger('test.media-webrtc-sdp-fuzz');
let n = 0;
function endpoint(host: ObjectHost): WebRtcEndpoint {
  n++;
  return new WebRtcEndpoint({
    id: `p_kurento.MediaPipeline/${n}_kurento.WebRtcEndpoint`,
    pipelineId: 'p_kurento.MediaPipeline',
    constructorParams: {},
    host,
    clock: new FakeClock(),
    config,
    ports,
    logger,
  });
}

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);
process.on('unhandledRejection', onUnhandled);
after(() => {
  process.off('unhandledRejection', onUnhandled);
});

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, rej) => (timer = setTimeout(() => rej(new Error(`hang: ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('WebRtcEndpoint.processOffer fuzz', () => {
  test('the unmutated Chromium offer is answered sendrecv PCMU + telephone-event/8000', { timeout: 30_000 }, async () => {
    const host = new RecordingHost();
    const ep = endpoint(host);
    const answer = (await ep.invoke('processOffer', { offer: CHROMIUM_OFFER })) as string;
    const m = parse(answer).media[0]!;
    assert.equal(m.direction, 'sendrecv');
    assert.deepEqual(m.rtp.map((x) => `${x.payload} ${x.codec}/${x.rate}`), ['0 PCMU/8000', '126 telephone-event/8000']);
    assert.ok(host.events.includes('MediaSessionStarted'));
    await assert.rejects(ep.invoke('processOffer', { offer: CHROMIUM_OFFER }), (e: KurentoError) => e.code === 40208);
    assert.ok(ep.boundPorts() >= 1);
    await ep.teardown({ notifyPeer: true });
    assert.equal(ep.boundPorts(), 0);
  });

  test('clear Kurento errors for obviously bad offers', { timeout: 30_000 }, async () => {
    const cases: [unknown, number, RegExp][] = [
      ['', 40201, /Empty offer/],
      [42, 40001, /offer/],
      ['hello', 40201, /v=0/],
      [CHROMIUM_OFFER.replace(/m=audio[^]*$/, ''), 40205, /no active audio/],
      [CHROMIUM_OFFER.replace(/a=fingerprint[^\r]*\r\n/, ''), 40205, /fingerprint/],
      [CHROMIUM_OFFER.replace(/a=ice-pwd[^\r]*\r\n/, ''), 40205, /ice-ufrag/],
    ];
    for (const [offer, code, msg] of cases) {
      const ep = endpoint(new RecordingHost());
      await assert.rejects(ep.invoke('processOffer', { offer }), (e: unknown) => {
        assert.ok(e instanceof KurentoError, String(e));
        assert.equal(e.code, code, `${e.message} for ${JSON.stringify(String(offer).slice(0, 40))}`);
        assert.match(e.message, msg);
        return true;
      });
      await ep.teardown({ notifyPeer: false });
      assert.equal(ep.boundPorts(), 0);
    }
  });

  test('an offer with nothing usable (no G.711, or not DTLS-SRTP) is answered with every m-line at port 0, binding nothing', { timeout: 30_000 }, async () => {
    const cases: [string, string][] = [
      ['no PCMU/PCMA', CHROMIUM_OFFER.replace(' 0 8 ', ' ').replace(/a=rtpmap:[08] [^\r]*\r\n/g, '')],
      ['RTP/AVP instead of DTLS-SRTP', CHROMIUM_OFFER.replace('UDP/TLS/RTP/SAVPF', 'RTP/AVP')],
    ];
    for (const [what, offer] of cases) {
      const host = new RecordingHost();
      const ep = endpoint(host);
      const answer = (await ep.invoke('processOffer', { offer })) as string;
      const offered = parse(offer).media;
      const media = parse(answer).media;
      assert.equal(media.length, offered.length, what);
      media.forEach((m, i) => {
        assert.equal(m.port, 0, `${what}: line ${i} rejected`);
        assert.equal(m.type, offered[i]!.type);
        assert.equal(m.protocol, offered[i]!.protocol);
        assert.equal(String(m.payloads), String(offered[i]!.payloads).split(' ')[0], `${what}: one format from the offer`);
        assert.equal(String(m.mid), String(offered[i]!.mid));
      });
      assert.doesNotMatch(answer, /a=group:BUNDLE/, `${what}: a rejected line is in no BUNDLE group`);
      assert.equal(await ep.invoke('getRemoteSessionDescriptor', {}), offer);
      assert.equal(await ep.invoke('getLocalSessionDescriptor', {}), answer);
      assert.ok(!host.events.includes('MediaSessionStarted'), `${what}: no media session`);
      await ep.invoke('gatherCandidates', {});
      assert.ok(host.events.includes('IceGatheringDone'), `${what}: nothing to gather, done at once`);
      assert.ok(!host.events.includes('IceCandidateFound'));
      assert.equal(ep.boundPorts(), 0);
      await assert.rejects(ep.invoke('processOffer', { offer: CHROMIUM_OFFER }), (e: KurentoError) => e.code === 40208, 'negotiated, as in KMS');
      await ep.teardown({ notifyPeer: true });
    }
    // positive control: the unmutated offer gets a live audio line from a fresh endpoint
    const ep = endpoint(new RecordingHost());
    const answer = (await ep.invoke('processOffer', { offer: CHROMIUM_OFFER })) as string;
    assert.ok(parse(answer).media.some((m) => m.type === 'audio' && Number(m.port) !== 0));
    await ep.teardown({ notifyPeer: false });
  });

  test('mDNS (.local) candidates are never handed to werift (it would send multicast DNS)', { timeout: 30_000 }, async () => {
    assert.equal(isMdnsCandidate('candidate:1 1 udp 2122260223 2a1b3c4d-0000-4e5f-8a9b-0123456789ab.local 54321 typ host'), true);
    assert.equal(isMdnsCandidate('candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host'), false);
    const withMdns = CHROMIUM_OFFER.replace('a=sendrecv\r\n', 'a=sendrecv\r\na=candidate:1 1 udp 2122260223 2a1b3c4d.local 54321 typ host generation 0\r\na=candidate:2 1 udp 2122260223 127.0.0.1 54322 typ host generation 0\r\n');
    const remote = checkRemoteSdp(withMdns, 'process-offer');
    const forStack = restrictOfferCodecs(withMdns, remote, 'PCMU');
    assert.ok(!forStack.includes('.local'));
    assert.match(forStack, /a=candidate:2 1 udp 2122260223 127\.0\.0\.1 54322 typ host/);
    const ep = endpoint(new RecordingHost());
    await ep.invoke('addIceCandidate', { candidate: { candidate: 'candidate:1 1 udp 2122260223 abc.local 5 typ host', sdpMid: '0', sdpMLineIndex: 0 } });
    const answer = (await ep.invoke('processOffer', { offer: withMdns })) as string;
    assert.match(answer, /a=sendrecv/);
    await ep.teardown({ notifyPeer: false });
  });

  test('addIceCandidate fuzz (before and after the offer): accepted or 40401/40001, never a crash', { timeout: 60_000 }, async () => {
    const r = rng(0xca11);
    const base = 'candidate:842163049 1 udp 1677729535 127.0.0.1 55123 typ host generation 0 ufrag Vq3n network-cost 999';
    const pieces = ['', ' ', 'candidate:', 'udp', 'tcp', 'typ', 'host', 'srflx', 'raddr', '999.999.1.1', '::1', 'fe80::1%eth0', 'x.local', '-1', '70000', '\u0000', 'a=', 'tcptype passive'];
    const mutateCandidate = (): string => {
      const parts = base.split(' ');
      for (let k = 0; k < 1 + Math.floor(r() * 3); k++) {
        const i = Math.floor(r() * parts.length);
        const op = Math.floor(r() * 3);
        if (op === 0) parts.splice(i, 1);
        else if (op === 1) parts[i] = pieces[Math.floor(r() * pieces.length)]!;
        else parts.splice(i, 0, pieces[Math.floor(r() * pieces.length)]!);
      }
      return parts.join(' ');
    };
    for (let round = 0; round < 2; round++) {
      const ep = endpoint(new RecordingHost());
      if (round === 1) await ep.invoke('processOffer', { offer: CHROMIUM_OFFER });
      let accepted = 0;
      for (let i = 0; i < 200; i++) {
        const c = i % 20 === 0 ? { candidate: 42 } : { candidate: mutateCandidate(), sdpMid: r() < 0.5 ? '0' : 'zz', sdpMLineIndex: Math.floor(r() * 3) };
        try {
          await withTimeout(ep.invoke('addIceCandidate', { candidate: c }), 5000, `candidate #${i}`);
          accepted++;
        } catch (err) {
          assert.ok(err instanceof KurentoError, `candidate #${i}: ${String(err)}`);
          assert.ok([40001, 40401].includes(err.code), `candidate #${i}: ${err.code} ${err.message}`);
        }
      }
      assert.ok(accepted > 0);
      await ep.teardown({ notifyPeer: false });
      assert.equal(ep.boundPorts(), 0);
    }
    assert.deepEqual(unhandled, []);
  });

  test('300 seeded mutations: an answer or a Kurento SDP error, never a crash, hang or leaked port', { timeout: 120_000 }, async () => {
    const r = rng(0xfe44);
    let answered = 0;
    let rejected = 0;
    let rejectedAll = 0;
    for (let i = 0; i < 300; i++) {
      const offer = mutate(CHROMIUM_OFFER, r);
      const ep = endpoint(new RecordingHost());
      try {
        const answer = (await withTimeout(ep.invoke('processOffer', { offer }), 10_000, `seed #${i}`)) as string;
        const media = parse(answer).media;
        assert.equal(media.length, parse(offer).media.length, `answer #${i} answers every offered m-line`);
        const m = media.find((x) => x.type === 'audio' && Number(x.port) !== 0);
        if (!m) {
          // nothing usable left in the mutated offer: every line answered with port 0, nothing bound
          assert.ok(media.every((x) => Number(x.port) === 0), `answer #${i}: every line rejected`);
          assert.equal(ep.boundPorts(), 0);
          rejectedAll++;
          continue;
        }
        assert.ok(m.rtp.some((x) => x.codec === 'PCMU' || x.codec === 'PCMA'), `answer #${i} has G.711`);
        assert.notEqual(m.direction, undefined);
        answered++;
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('hang')) throw err;
        assert.ok(err instanceof KurentoError, `mutation #${i} threw a non-Kurento error: ${String(err)}\n${offer}`);
        assert.ok([40001, 40201, 40205].includes(err.code), `mutation #${i}: code ${err.code} ${err.message}`);
        rejected++;
      } finally {
        await ep.teardown({ notifyPeer: true });
      }
      assert.equal(ep.boundPorts(), 0, `mutation #${i} left ports bound`);
    }
    assert.ok(answered > 10 && rejected > 10, `answered ${answered}, rejected ${rejected}, all lines at port 0 ${rejectedAll}`);
    assert.deepEqual(unhandled, []);
  });
});
