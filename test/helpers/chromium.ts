import { after } from 'node:test';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

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

/** Launches a dedicated /usr/bin/chromium with CHROMIUM_ARGS (the caller closes it). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
}

/**
 * One Chromium per test process, launched on first use and shared by every webphone of the process:
 * each webphone gets its own browser context (own cookies, storage, pages), so webphones stay as
 * isolated from each other as separate browsers, without a browser start (~1 s, more under load) each.
 * The browser is closed after the process's last test (root `after` hook); should the process exit
 * without it, playwright kills the browser's process group on exit.
 */
let shared: Promise<Browser> | undefined;

function sharedChromium(): Promise<Browser> {
  if (!shared) {
    const launching = launchChromium();
    shared = launching;
    launching.then(
      (browser) => browser.on('disconnected', () => { if (shared === launching) shared = undefined; }),
      () => { if (shared === launching) shared = undefined; },
    );
  }
  return shared;
}

/**
 * Starts launching the shared Chromium now (e.g. while a stack starts), so the first newChromiumContext
 * does not wait for it. A failed launch is reported by that newChromiumContext, not here.
 */
export function warmChromium(): void {
  sharedChromium().catch(() => undefined);
}

/** A new, isolated browser context in the process's shared Chromium; close it to close its pages. */
export async function newChromiumContext(): Promise<BrowserContext> {
  return (await sharedChromium()).newContext();
}

/** Closes the shared Chromium (if one was launched); the next newChromiumContext launches a new one. */
export async function closeSharedChromium(): Promise<void> {
  const launching = shared;
  shared = undefined;
  const browser = await launching?.catch(() => undefined);
  await browser?.close().catch(() => undefined);
}

after(closeSharedChromium);
