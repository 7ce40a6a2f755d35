import type { Browser, BrowserContext, Page } from 'playwright-core';
import { newChromiumContext } from './chromium';

/**
 * Opens the gateway's webphone page (served at `/` on httpPort) in a new context of `browser` as
 * user/password, waits for the page to be ready, clicks Register and waits (15 s) for 'registered'.
 */
export async function openRegisteredPage(browser: Browser, httpPort: number, user: string, password: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`http://127.0.0.1:${httpPort}/?user=${user}`);
  await page.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true);
  // the password is typed into the form: the page never takes it from the URL
  await page.fill('#password', password);
  await page.click('#register');
  await page.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'registered', undefined, { timeout: 15000 });
  return page;
}

/**
 * The gateway's own JsSIP webphone page (served at `/` by ferry gateway) in real Chromium, driven by
 * its stable element ids (#register, #target, #call, #answer, #hangup, #mute, #hold, #call-state) and
 * its test hooks (window.ferryCallState, window.ferryEndedAt, window.ferryStats()).
 * The webphone of the gateway lifecycle scenarios (S1, S2, S4, S9, S13, S14).
 * Each webphone is its own browser context of the process's shared Chromium (test/helpers/chromium.ts):
 * closing it closes its page, as closing the tab would (its WebSocket and peer connection go with it).
 */
export class GatewayWebphone {
  private constructor(
    private readonly context: BrowserContext,
    readonly page: Page,
  ) {}

  static async open(options: { httpPort: number; wsPort: number; user: string; password: string }): Promise<GatewayWebphone> {
    const context = await newChromiumContext();
    try {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${options.httpPort}/`);
      await page.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true, undefined, { timeout: 10_000 });
      // typed into the form as a person would (the page takes neither the password nor the WebSocket from its URL)
      await page.fill('#ws-url', `ws://127.0.0.1:${options.wsPort}`);
      await page.fill('#user', options.user);
      await page.fill('#password', options.password);
      const phone = new GatewayWebphone(context, page);
      await page.click('#register');
      await page.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'registered', undefined, { timeout: 10_000 });
      return phone;
    } catch (err) {
      await context.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * The page at `pageUrl` (the HTTPS page at a public address, say) in a new context of `browser`,
   * registered as user/password over the WebSocket URL the page was given (as a person opening it would);
   * `prepare` runs on the new context first (an init script, say); closing the webphone closes the context.
   */
  static async openAt(browser: Browser, pageUrl: string, options: { user: string; password: string; prepare?: (context: BrowserContext) => Promise<void> }): Promise<GatewayWebphone> {
    const context = await browser.newContext();
    try {
      await options.prepare?.(context);
      const page = await context.newPage();
      await page.goto(pageUrl);
      await page.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true, undefined, { timeout: 15_000 });
      await page.fill('#user', options.user);
      await page.fill('#password', options.password);
      const phone = new GatewayWebphone(context, page);
      await page.click('#register');
      await page.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'registered', undefined, { timeout: 15_000 });
      return phone;
    } catch (err) {
      await context.close().catch(() => undefined);
      throw err;
    }
  }

  async callState(): Promise<string> {
    return this.page.evaluate(() => (window as unknown as { ferryCallState?: string }).ferryCallState ?? '');
  }

  async waitCallState(state: string, timeoutMs: number): Promise<void> {
    await this.page.waitForFunction((s) => (window as unknown as { ferryCallState?: string }).ferryCallState === s, state, { timeout: timeoutMs });
  }

  async dial(target: string): Promise<void> {
    await this.page.fill('#target', target);
    await this.page.click('#call');
  }

  async answer(): Promise<void> {
    await this.page.waitForSelector('#answer:not([disabled])', { timeout: 10_000 });
    await this.page.click('#answer');
  }

  /** Click hang up; returns when the page handled the click (page clock = this machine's clock; Playwright's own click latency excluded). */
  async hangup(): Promise<number> {
    const before = Date.now();
    await this.page.evaluate(() => {
      const w = window as unknown as { lifecycleHangupAt?: number };
      w.lifecycleHangupAt = undefined;
      document.getElementById('hangup')?.addEventListener('click', () => { w.lifecycleHangupAt = Date.now(); }, { capture: true, once: true });
    });
    await this.page.click('#hangup');
    const at = await this.page.evaluate(() => (window as unknown as { lifecycleHangupAt?: number }).lifecycleHangupAt);
    return at ?? before;
  }

  async toggleMute(): Promise<void> {
    await this.page.click('#mute');
  }

  async toggleHold(): Promise<void> {
    await this.page.click('#hold');
  }

  /** When the page saw the call end (JsSIP 'ended'/'failed'), or undefined. */
  async endedAt(): Promise<number | undefined> {
    return this.page.evaluate(() => (window as unknown as { ferryEndedAt?: number }).ferryEndedAt);
  }

  async message(): Promise<string> {
    return (await this.page.textContent('#message')) ?? '';
  }

  async rtpStats(): Promise<{ sent: number; received: number }> {
    return this.page.evaluate(() => (window as unknown as { ferryStats(): Promise<{ sent: number; received: number }> }).ferryStats());
  }

  async close(): Promise<void> {
    await this.context.close().catch(() => undefined);
  }
}
