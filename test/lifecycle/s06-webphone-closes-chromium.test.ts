import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pollUntil } from '../helpers/wait-for';
import { MediaServerProcess } from '../helpers/media-server-process';
import { MediaCall } from '../helpers/media-call';
import { RtpPhone } from '../helpers/rtp-phone';
import { BrowserWebphone } from '../helpers/browser-webphone';

/**
 * docs/lifecycle.md S6: the proxy was SIGKILLed (S3), then the webphone goes away. Real Chromium is the
 * webphone. pc.close() sends DTLS close_notify: ferry media must release within 1 s (dtls-close).
 * A killed tab sends nothing: only ICE consent loss (RFC 7675) tells; ferry media's consent timing is
 * tuned down for the test (check every 1 s, lost after 4 s), and the bound is that consent timeout + 2 s.
 * Both times the phone is told with an RTCP BYE before the release (rule 4).
 */
const CONSENT_INTERVAL_MS = 1000;
const CONSENT_TIMEOUT_MS = 4000;

describe('S6: webphone (Chromium) closes after the proxy died', () => {
  let media: MediaServerProcess;
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    media = await MediaServerProcess.start({
      FERRY_MEDIA_DEAD_MS: '15000',
      FERRY_MEDIA_AUTO_RELEASE: 'orphans',
      FERRY_MEDIA_ICE_CONSENT_INTERVAL_MS: String(CONSENT_INTERVAL_MS),
      FERRY_MEDIA_ICE_CONSENT_TIMEOUT_MS: String(CONSENT_TIMEOUT_MS),
    });
  });
  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await media.stop();
  });

  async function orphanedBrowserCall(): Promise<{ call: MediaCall<BrowserWebphone>; browser: BrowserWebphone }> {
    const browser = await BrowserWebphone.launch();
    closers.push(() => browser.close());
    const call = await MediaCall.startWith({ media, phone: new RtpPhone({ rtcpIntervalMs: 1000 }), webphone: browser });
    closers.push(() => call.close());
    await pollUntil(async () => (await call.phone.stats()).rtpReceived > 20 && (await browser.stats()).inPackets > 20,
      { timeoutMs: 10_000, stepMs: 50, what: 'media both ways (the phone receives the browser and the browser the phone, > 20 packets each)' });
    await call.proxy.kill('SIGKILL');
    // ferry media has seen the proxy go: the pipeline is orphaned (S3)
    await media.waitForStats((st) => ((st.pipelinesDetail ?? []) as { id: string; orphaned?: boolean }[]).some((p) => p.id === call.answer!.pipelineId && p.orphaned === true), 3000);
    return { call, browser };
  }

  test('S6: S3, then the webphone closes its peer connection (pc.close(): DTLS close_notify) -> released within 1 s, phone told', { timeout: 300_000 }, async () => {
    const { call, browser } = await orphanedBrowserCall();
    const closedAt = await browser.closePeerConnection();
    const { at, stats } = await media.waitForPipelineGone(call.answer!.pipelineId, 5000);
    const latency = at - closedAt;
    assert.ok(latency < 1000, `released ${latency} ms after pc.close() (bound < 1 s)`);
    if (stats.pipelines === 0) assert.equal(stats.boundPorts, 0, 'no port left bound');
    assert.ok(media.logsMatching('dtls-close').length > 0, `end reason dtls-close logged; log tail:\n${media.log(20)}`);
    const phone = await pollUntil(async () => { const st = await call.phone.stats(); return st.byeReceived >= 1 ? st : undefined; },
      { timeoutMs: 2_000, what: "the phone's RTCP BYE" });
    assert.ok(phone.byeReceived >= 1 && phone.firstByeAt! - closedAt < 1000, `phone got an RTCP BYE within 1 s: ${JSON.stringify(phone)}`);
    console.log(`[measure] S6 release latency after pc.close(): ${latency} ms`);
  });

  test('S6 tab killed: S3, then the browser tab is closed without a word -> released on ICE consent loss within the consent timeout + 2 s', { timeout: 300_000 }, async () => {
    const { call, browser } = await orphanedBrowserCall();
    const killedAt = await browser.killTab();
    const bound = CONSENT_TIMEOUT_MS + 2000;
    const { at } = await media.waitForPipelineGone(call.answer!.pipelineId, bound + 5000);
    const latency = at - killedAt;
    assert.ok(latency <= bound, `released ${latency} ms after the tab was killed (bound: consent timeout ${CONSENT_TIMEOUT_MS} ms + 2 s)`);
    assert.ok(media.logsMatching('ice-failed').length > 0, `end reason ice-failed logged; log tail:\n${media.log(20)}`);
    assert.ok((await call.phone.stats()).byeReceived >= 1, 'phone told with an RTCP BYE');
    console.log(`[measure] S6 release latency after tab kill: ${latency} ms (consent timeout ${CONSENT_TIMEOUT_MS} ms)`);
  });
});
