/**
 * Where a WebRTC leg's set-up time goes, one call at a time with nothing else running: a WeriftLeg (ferry's
 * server side) answers a werift browser's offer in this process; every ICE/DTLS state change of both sides is
 * timed from the moment processOffer is called. Isolates the leg from kurento-client, the load workers and
 * the machine's load (webrtc-call-memory.ts measures the whole call under load).
 *
 *   node --import tsx bench/media/webrtc-leg-timing.ts [--calls 10] [--resend 25,60,120,250]
 *
 * --resend replaces the early ClientHello resend schedule (CLIENT_HELLO_RESEND_MS, ms after the first send) for
 * this run, to compare schedules.
 */
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { loadIceSettings } from '../../src/media/webrtc/ice-settings';
import { WeriftLeg } from '../../src/media/webrtc/werift-leg';
import { CLIENT_HELLO_RESEND_MS } from '../../src/media/webrtc/werift-internals';

async function oneCall(): Promise<Record<string, number>> {
  const marks: Record<string, number> = {};
  let t0 = 0;
  const mark = (k: string): void => {
    marks[k] ??= performance.now() - t0;
  };
  const browser = new RTCPeerConnection({
    codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 })] },
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
  });
  browser.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  await browser.setLocalDescription(await browser.createOffer());
  if (browser.iceGatheringState !== 'complete') await new Promise<void>((r) => browser.iceGatheringStateChange.subscribe((s) => s === 'complete' && r()));
  const offer = browser.localDescription!.sdp;
  const leg = new WeriftLeg({ clock: systemClock, logger: createLogger('timing'), ice: loadIceSettings({}) });
  leg.on('ice-state', (s) => mark(`server ICE ${s}`));
  leg.on('dtls-state', (s) => mark(`server DTLS ${s}`));
  browser.iceConnectionStateChange.subscribe((s) => mark(`browser ICE ${s}`));
  browser.connectionStateChange.subscribe((s) => mark(`browser PC ${s}`));
  browser.dtlsTransports[0]?.onStateChange.subscribe((s) => mark(`browser DTLS ${s}`));
  const connected = new Promise<void>((r) => browser.connectionStateChange.subscribe((s) => s === 'connected' && r()));
  t0 = performance.now();
  const answer = await leg.processOffer(offer, 'PCMU');
  mark('processOffer');
  await browser.setRemoteDescription({ type: 'answer', sdp: answer });
  mark('browser answer applied');
  browser.dtlsTransports[0]?.onStateChange.subscribe((s) => mark(`browser DTLS ${s}`));
  await connected;
  mark('connected');
  // the phases, per call (less distorted by a loaded machine than the marks since processOffer)
  const dtlsFrom = marks['server DTLS CONNECTING'];
  const dtlsTo = marks['browser DTLS connected'];
  if (dtlsFrom !== undefined && dtlsTo !== undefined) marks['phase: DTLS (server connecting → browser connected)'] = dtlsTo - dtlsFrom;
  const iceFrom = marks['browser answer applied'];
  const iceTo = marks['server ICE CONNECTED'];
  if (iceFrom !== undefined && iceTo !== undefined) marks['phase: ICE (answer applied → server connected)'] = iceTo - iceFrom;
  await leg.close();
  await browser.close();
  return marks;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--calls');
  const calls = i > 0 ? Number(process.argv[i + 1]) : 10;
  const r = process.argv.indexOf('--resend');
  if (r > 0) (CLIENT_HELLO_RESEND_MS as number[]).splice(0, CLIENT_HELLO_RESEND_MS.length, ...process.argv[r + 1]!.split(',').map(Number));
  process.stdout.write(`ClientHello resend schedule: ${CLIENT_HELLO_RESEND_MS.join(', ')} ms\n`);
  const all: Record<string, number[]> = {};
  for (let k = 0; k < calls; k++) {
    const m = await oneCall();
    for (const [key, v] of Object.entries(m)) (all[key] ??= []).push(v);
  }
  const rows = Object.entries(all).map(([k, v]) => {
    const s = [...v].sort((a, b) => a - b);
    return { k, p50: s[Math.floor((s.length - 1) / 2)]!, max: s[s.length - 1]!, n: v.length };
  });
  rows.sort((a, b) => a.p50 - b.p50);
  for (const r of rows) process.stdout.write(`${r.p50.toFixed(1).padStart(8)} ms p50 ${r.max.toFixed(1).padStart(8)} ms max  (${r.n})  ${r.k}\n`);
  process.exit(0);
}

void main();
