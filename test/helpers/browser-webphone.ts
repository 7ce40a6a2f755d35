import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BrowserContext, Page } from 'playwright-core';
import { newChromiumContext } from './chromium';
import { pollPause } from './wait-for';

/**
 * The webphone's media side in real Chromium (Debian /usr/bin/chromium via playwright-core, fake
 * microphone): an RTCPeerConnection on a tiny local page, for the scenarios that are about what a
 * browser does on the wire (S6: pc.close() sends DTLS close_notify, a killed tab sends nothing; S9:
 * a muted track). Signalling is done by the test (offer out, answer and trickled candidates in).
 * Only 127.0.0.1 UDP host candidates are kept, so all media stays on loopback.
 * States the page sees are recorded with their times (`states()`), including the DTLS transport's.
 * Each webphone is its own browser context of the process's shared Chromium (test/helpers/chromium.ts).
 */
const PAGE = `<!doctype html><meta charset="utf-8"><title>lifecycle webphone</title><script>
window.log = [];
const rec = (what, state) => window.log.push({ what, state, at: Date.now() });
window.makeOffer = async () => {
  const pc = window.pc = new RTCPeerConnection();
  pc.addEventListener('iceconnectionstatechange', () => rec('ice', pc.iceConnectionState));
  pc.addEventListener('connectionstatechange', () => rec('connection', pc.connectionState));
  const stream = window.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  for (const t of stream.getTracks()) pc.addTrack(t, stream);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => { if (pc.iceGatheringState === 'complete') r(); pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r()); });
  const dtls = pc.getSenders()[0].transport;
  if (dtls) dtls.addEventListener('statechange', () => rec('dtls', dtls.state));
  return pc.localDescription.sdp;
};
window.setAnswer = async (sdp) => { await pc.setRemoteDescription({ type: 'answer', sdp }); };
window.addCandidate = async (c) => { await pc.addIceCandidate(c); };
window.stats = async () => {
  const o = { inPackets: 0, outPackets: 0 };
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') o.inPackets = s.packetsReceived;
    if (s.type === 'outbound-rtp' && s.kind === 'audio') o.outPackets = s.packetsSent;
  });
  o.connectionState = pc.connectionState; o.iceConnectionState = pc.iceConnectionState;
  o.dtlsState = pc.getSenders()[0]?.transport?.state;
  return o;
};
window.disableTrack = () => { for (const t of window.stream.getTracks()) t.enabled = false; };
window.enableTrack = () => { for (const t of window.stream.getTracks()) t.enabled = true; };
window.replaceTrackNull = async () => { await pc.getSenders()[0].replaceTrack(null); };
window.replaceTrackBack = async () => { await pc.getSenders()[0].replaceTrack(window.stream.getAudioTracks()[0]); };
window.closePc = () => { pc.close(); rec('connection', 'closed-by-page'); };
</script>`;

export { CHROMIUM_ARGS } from './chromium';

export interface BrowserStats {
  inPackets: number;
  outPackets: number;
  connectionState: string;
  iceConnectionState: string;
  dtlsState: string | undefined;
}

export class BrowserWebphone {
  private constructor(
    private readonly server: http.Server,
    private readonly context: BrowserContext,
    readonly page: Page,
  ) {}

  static async launch(): Promise<BrowserWebphone> {
    const server = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(PAGE);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const context = await newChromiumContext();
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    return new BrowserWebphone(server, context, page);
  }

  /** Complete offer (gathering done), keeping only 127.0.0.1 UDP host candidates. */
  async createOffer(): Promise<string> {
    const sdp = await this.page.evaluate(() => (window as unknown as { makeOffer(): Promise<string> }).makeOffer());
    return sdp
      .split('\r\n')
      .filter((line) => !line.startsWith('a=candidate:') || (/ udp /i.test(line) && / 127\.0\.0\.1 /.test(line)))
      .join('\r\n');
  }

  async setAnswer(sdp: string): Promise<void> {
    await this.page.evaluate((s) => (window as unknown as { setAnswer(s: string): Promise<void> }).setAnswer(s), sdp);
  }

  async addIceCandidate(c: { candidate: string; sdpMid?: string; sdpMLineIndex?: number }): Promise<void> {
    const candidate = { candidate: c.candidate, sdpMid: c.sdpMid ?? '0', sdpMLineIndex: c.sdpMLineIndex ?? 0 };
    await this.page.evaluate((x) => (window as unknown as { addCandidate(c: unknown): Promise<void> }).addCandidate(x), candidate);
  }

  async stats(): Promise<BrowserStats> {
    return this.page.evaluate(() => (window as unknown as { stats(): Promise<BrowserStats> }).stats());
  }

  async states(): Promise<{ what: string; state: string; at: number }[]> {
    return this.page.evaluate(() => (window as unknown as { log: { what: string; state: string; at: number }[] }).log);
  }

  async waitConnected(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.stats();
      if (s.connectionState === 'connected') return;
      if (Date.now() > deadline) throw new Error(`Chromium webphone not connected after ${timeoutMs} ms: ${JSON.stringify(s)}`);
      await pollPause(50);
    }
  }

  /** S9 mute variants. */
  async disableTrack(): Promise<void> {
    await this.page.evaluate(() => (window as unknown as { disableTrack(): void }).disableTrack());
  }
  async enableTrack(): Promise<void> {
    await this.page.evaluate(() => (window as unknown as { enableTrack(): void }).enableTrack());
  }
  async replaceTrackNull(): Promise<void> {
    await this.page.evaluate(() => (window as unknown as { replaceTrackNull(): Promise<void> }).replaceTrackNull());
  }
  async replaceTrackBack(): Promise<void> {
    await this.page.evaluate(() => (window as unknown as { replaceTrackBack(): Promise<void> }).replaceTrackBack());
  }

  /** S6: the webphone closes its peer connection (the browser sends DTLS close_notify). Returns the time. */
  async closePeerConnection(): Promise<number> {
    await this.page.evaluate(() => (window as unknown as { closePc(): void }).closePc());
    return Date.now();
  }

  /** S6 variant: the tab is killed (no close_notify; only ICE consent loss tells). Returns the time. */
  async killTab(): Promise<number> {
    const at = Date.now();
    await this.page.close({ runBeforeUnload: false });
    return at;
  }

  async close(): Promise<void> {
    await this.context.close().catch(() => undefined);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
