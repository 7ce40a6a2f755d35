'use strict';
/**
 * Event-loop lag probe for the media server under benchmark, preloaded with
 * NODE_OPTIONS=--require <this file> (plain JS so it loads before tsx).
 * A 20 ms timer records how late it fires (= how long the loop was blocked); once a second the
 * samples are appended as one JSON line {t, pid, lagUs:[...]} to $FERRY_BENCH_LAG_FILE. 50 wake-ups/s
 * cost nothing measurable. Node child processes of the media server inherit NODE_OPTIONS and report
 * under their own pid. Does nothing when the variable is unset.
 */
const file = process.env.FERRY_BENCH_LAG_FILE;
if (file) {
  const fs = require('node:fs');
  const INTERVAL_MS = 20;
  let samples = [];
  let expected = performance.now() + INTERVAL_MS;
  const tick = () => {
    const now = performance.now();
    samples.push(Math.max(0, Math.round((now - expected) * 1000)));
    expected = now + INTERVAL_MS;
    setTimeout(tick, INTERVAL_MS).unref();
  };
  setTimeout(tick, INTERVAL_MS).unref();
  setInterval(() => {
    if (samples.length === 0) return;
    const line = JSON.stringify({ t: Date.now(), pid: process.pid, lagUs: samples }) + '\n';
    samples = [];
    fs.appendFile(file, line, () => undefined);
  }, 1000).unref();
}
