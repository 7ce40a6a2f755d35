'use strict';
/**
 * Memory probe for the media server under bench/media/webrtc-call-memory.ts, preloaded with
 * NODE_OPTIONS="--expose-gc --require <this file>" (plain JS so it loads before tsx). On SIGUSR2 it runs
 * a full garbage collection (twice, so weak maps and finalizers settle), appends one JSON line
 * {t, rss, heapUsed, heapTotal, external, arrayBuffers, spaces: V8 heap spaces' size and use} to $FERRY_BENCH_MEM_FILE, and when the file
 * $FERRY_BENCH_MEM_FILE.snapshot names a path, writes a V8 heap snapshot there first (and removes the
 * request). Does nothing when the variable is unset.
 */
const file = process.env.FERRY_BENCH_MEM_FILE;
if (file) {
  const fs = require('node:fs');
  const v8 = require('node:v8');
  process.on('SIGUSR2', () => {
    const collect = typeof globalThis.gc === 'function' ? globalThis.gc : () => undefined;
    collect();
    collect();
    const request = `${file}.snapshot`;
    let snapshot;
    try {
      snapshot = fs.readFileSync(request, 'utf8').trim();
      fs.unlinkSync(request);
    } catch {
      snapshot = undefined;
    }
    if (snapshot) v8.writeHeapSnapshot(snapshot);
    const m = process.memoryUsage();
    const spaces = {};
    for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = { size: s.space_size, used: s.space_used_size };
    const line = { t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, gc: typeof globalThis.gc === 'function', snapshot, spaces };
    fs.appendFileSync(file, JSON.stringify(line) + '\n');
  });
}
