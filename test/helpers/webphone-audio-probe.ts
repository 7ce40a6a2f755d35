import type { Page } from 'playwright-core';

/**
 * What the gateway's webphone page plays out, heard in the page itself: a Web Audio AnalyserNode on the
 * remote stream of its `#remote-audio` element, read every 20 ms (the last 2048 samples: overlapping frames), with the Goertzel power
 * of a few frequencies per frame (the tone an IP phone sends, the DTMF row and column tones: Chromium's
 * NetEq plays a received RFC 4733 event out as its two tones). The script is a string so the bundler's
 * helpers never reach the page.
 */
export const PROBE_FREQUENCIES = [440, 697, 770, 852, 941, 1209, 1336, 1477] as const;

export interface ProbeFrame {
  at: number;
  /** RMS of the frame (full scale 1.0) */
  rms: number;
  /** Goertzel power per frequency, normalised by the frame length */
  power: Record<string, number>;
}

const INSTALL = `(() => {
  const el = document.getElementById('remote-audio');
  if (!el || !el.srcObject) throw new Error('no remote stream on #remote-audio');
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  ctx.createMediaStreamSource(el.srcObject).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const freqs = ${JSON.stringify(PROBE_FREQUENCIES)};
  const frames = [];
  window.ferryAudioProbe = { frames, state: () => ctx.state, close: () => { clearInterval(timer); ctx.close(); } };
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let energy = 0;
    for (const v of buf) energy += v * v;
    const power = {};
    for (const hz of freqs) {
      const c = 2 * Math.cos((2 * Math.PI * hz) / ctx.sampleRate);
      let s1 = 0, s2 = 0;
      for (const v of buf) { const s0 = v + c * s1 - s2; s2 = s1; s1 = s0; }
      power[hz] = (s1 * s1 + s2 * s2 - c * s1 * s2) / (buf.length * buf.length);
    }
    frames.push({ at: Date.now(), rms: Math.sqrt(energy / buf.length), power });
    if (frames.length > 3000) frames.splice(0, 1000);
  }, 20);
  return ctx.state;
})()`;

/** Starts the probe on the page's current remote stream (the call must be connected); resolves with the AudioContext's state. */
export async function installAudioProbe(page: Page): Promise<string> {
  return page.evaluate(INSTALL);
}

/** The frames taken at or after `since` (ms since epoch, the page's clock = this machine's). */
export async function probeFrames(page: Page, since = 0): Promise<ProbeFrame[]> {
  const frames = (await page.evaluate('window.ferryAudioProbe ? window.ferryAudioProbe.frames : []')) as ProbeFrame[];
  return frames.filter((f) => f.at >= since);
}

export async function closeAudioProbe(page: Page): Promise<void> {
  await page.evaluate('window.ferryAudioProbe && window.ferryAudioProbe.close()').catch(() => undefined);
}

/** A frame in which `hz` dominates: its power is over `ratio` times every other probed frequency's and the frame is not silent. */
export function dominates(frame: ProbeFrame, hz: number, ratio = 10): boolean {
  const mine = frame.power[String(hz)] ?? 0;
  return frame.rms > 0.01 && Object.entries(frame.power).every(([f, p]) => f === String(hz) || mine > ratio * p);
}

/** A frame carrying the DTMF pair `low`+`high`: each over `ratio` times every probed frequency outside the pair. */
export function carriesPair(frame: ProbeFrame, low: number, high: number, ratio = 10): boolean {
  const pl = frame.power[String(low)] ?? 0;
  const ph = frame.power[String(high)] ?? 0;
  return frame.rms > 0.01 && Object.entries(frame.power).every(([f, p]) => f === String(low) || f === String(high) || (pl > ratio * p && ph > ratio * p));
}
