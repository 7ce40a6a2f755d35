/**
 * Real networks: behind a 1:1 NAT, ferry media binds a private address but must tell phones and browsers
 * the public one (FERRY_MEDIA_PUBLIC_IP). Two bin/ferry media processes, driven by the real kurento-client:
 * one with FERRY_MEDIA_PUBLIC_IP (a documentation address, RFC 5737), one without (the control, which must
 * show its bound 127.0.0.1). Checked: the RtpEndpoint's SDP `c=`, the WebRtcEndpoint's offer (candidates and
 * `c=`) and its trickled IceCandidateFound candidates.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MediaServerProcess } from '../helpers/media-server-process';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';

const PUBLIC_IP = '198.51.100.23';

interface Advertised {
  rtpSdp: string;
  webrtcOffer: string;
  trickled: string[];
}

async function advertisedBy(client: KurentoClientLike): Promise<Advertised> {
  const pipeline = await client.create('MediaPipeline');
  try {
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const rtpSdp = await call<string>(rtp, 'generateOffer');
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    const trickled: string[] = [];
    const done = new Promise<void>((resolve) => webrtc.on('IceGatheringDone', () => resolve()));
    webrtc.on('IceCandidateFound', (data) => trickled.push((data.candidate as { candidate: string }).candidate));
    const webrtcOffer = await call<string>(webrtc, 'generateOffer');
    await call(webrtc, 'gatherCandidates');
    await Promise.race([done, new Promise((_r, reject) => setTimeout(() => reject(new Error('no IceGatheringDone within 10 s')), 10_000))]);
    return { rtpSdp, webrtcOffer, trickled };
  } finally {
    await pipeline.release();
  }
}

const hostCandidateAddresses = (lines: string[]): string[] =>
  lines.map((l) => /candidate:\S+ \d+ udp \d+ (\S+) \d+ typ host/i.exec(l)?.[1]).filter((a): a is string => a !== undefined);

describe('media: advertised address behind NAT (FERRY_MEDIA_PUBLIC_IP)', { timeout: 60_000 }, () => {
  let natted: MediaServerProcess;
  let plain: MediaServerProcess;
  let nattedClient: KurentoClientLike;
  let plainClient: KurentoClientLike;

  before(async () => {
    [natted, plain] = await Promise.all([
      MediaServerProcess.start({ FERRY_MEDIA_PUBLIC_IP: PUBLIC_IP }),
      MediaServerProcess.start(),
    ]);
    [nattedClient, plainClient] = await Promise.all([connectKurento(natted.url), connectKurento(plain.url)]);
  });

  after(async () => {
    nattedClient?.close();
    plainClient?.close();
    await Promise.all([natted?.stop(), plain?.stop()]);
  });

  test('real networks: the RtpEndpoint SDP and the WebRTC candidates name the public address, not the bound one', async () => {
    const a = await advertisedBy(nattedClient);
    assert.match(a.rtpSdp, new RegExp(`\\r\\nc=IN IP4 ${PUBLIC_IP.replace(/\./g, '\\.')}\\r\\n`));
    const offerCandidates = a.webrtcOffer.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
    assert.ok(offerCandidates.length > 0, 'the offer carries host candidates');
    assert.deepEqual([...new Set(hostCandidateAddresses(offerCandidates))], [PUBLIC_IP]);
    assert.ok(a.trickled.length > 0, 'candidates were trickled');
    assert.deepEqual([...new Set(hostCandidateAddresses(a.trickled))], [PUBLIC_IP]);
    assert.doesNotMatch(a.webrtcOffer, /127\.0\.0\.1/);
  });

  test('real networks (control): without FERRY_MEDIA_PUBLIC_IP the bound address 127.0.0.1 is advertised', async () => {
    const a = await advertisedBy(plainClient);
    assert.match(a.rtpSdp, /\r\nc=IN IP4 127\.0\.0\.1\r\n/);
    assert.deepEqual([...new Set(hostCandidateAddresses(a.webrtcOffer.split('\r\n')))], ['127.0.0.1']);
    assert.deepEqual([...new Set(hostCandidateAddresses(a.trickled))], ['127.0.0.1']);
  });
});
