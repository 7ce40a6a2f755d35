import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { PortAllocator } from '../../src/media/rtp/port-allocator';

/** RTP ports: even RTP + odd RTCP pairs from the OS or a configured range; a full range is a clear error. */
describe('media: RTP port allocation', () => {
  test('OS ports: an even RTP port with RTCP on port+1, or one port with rtcp-mux', { timeout: 30_000 }, async () => {
    const a = new PortAllocator('127.0.0.1', 0, 0);
    const pair = await a.bindPair(true);
    const rtp = pair.rtp.address().port;
    assert.equal(rtp % 2, 0);
    assert.equal(pair.rtcp!.address().port, rtp + 1);
    const single = await a.bindPair(false);
    assert.equal(single.rtcp, undefined);
    for (const s of [pair.rtp, pair.rtcp!, single.rtp]) s.close();
  });

  test('a configured range is used, busy ports are skipped, an exhausted range fails clearly', { timeout: 30_000 }, async () => {
    // find 6 consecutive free ports starting at an even number
    let base = 0;
    for (let tries = 0; tries < 50 && !base; tries++) {
      const cand = 20000 + 2 * Math.floor(Math.random() * 20000);
      const probes: dgram.Socket[] = [];
      let ok = true;
      for (let p = cand; p < cand + 6 && ok; p++) {
        const s = dgram.createSocket('udp4');
        ok = await new Promise<boolean>((res) => {
          s.once('error', () => res(false));
          s.bind(p, '127.0.0.1', () => res(true));
        });
        probes.push(s);
      }
      probes.forEach((s) => {
        try {
          s.close();
        } catch {
          // never bound
        }
      });
      if (ok) base = cand;
    }
    assert.ok(base, 'found a free range');
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((res) => blocker.bind(base + 2, '127.0.0.1', () => res()));
    const a = new PortAllocator('127.0.0.1', base, base + 5);
    const first = await a.bindPair(true);
    assert.equal(first.rtp.address().port, base);
    const second = await a.bindPair(true);
    assert.equal(second.rtp.address().port, base + 4, 'skips the pair whose RTP port is busy');
    await assert.rejects(a.bindPair(true), /no free RTP port pair in/);
    for (const s of [first.rtp, first.rtcp!, second.rtp, second.rtcp!, blocker]) s.close();
  });
});
