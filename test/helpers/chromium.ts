import { chromium, type Browser } from 'playwright-core';

/**
 * Real Chromium for the browser tests: Debian's /usr/bin/chromium through playwright-core, headless,
 * with a fake microphone (no permission prompt) and loopback WebRTC allowed (host candidates on
 * 127.0.0.1, no mDNS hiding), and no background traffic of its own.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
];

/** Launches /usr/bin/chromium with CHROMIUM_ARGS. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
}
