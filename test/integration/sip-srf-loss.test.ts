/**
 * Acceptance: under 10% packet loss the transaction layer completes every call by
 * retransmission. A drachtio-srf createB2BUA app bridges caller SIPp A to callee SIPp B through the
 * SIP server under test, with the server's standard RFC 3261 timers (T1 = 500 ms). Two loss methods,
 * one file each:
 *  - SIPp's own `-lost 10` on both phones: test/integration/sip-srf-loss-sipp.test.ts;
 *  - kernel loss (this file): iptables drops 10% of the UDP datagrams sent to either phone or to the
 *    server on loopback (test/helpers/loopback-udp-loss.ts; `tc netem` is not available in this kernel).
 *
 * Runs against ferry sip, or a real drachtio-server when DRACHTIO_URL is set.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LOSS_CALLS, LOSS_PERCENT, startLossWorld, type LossWorld } from '../helpers/sip-loss-calls';
import { LoopbackUdpLoss } from '../helpers/loopback-udp-loss';

describe(`${LOSS_PERCENT}% kernel packet loss: every call completes by retransmission`, () => {
  let world: LossWorld;

  before(async () => {
    world = await startLossWorld('sip-srf-loss');
  });

  after(async () => {
    await world?.close();
  });

  test(`${LOSS_CALLS} B2BUA calls with ${LOSS_PERCENT}% kernel packet loss (iptables statistic DROP on loopback UDP to both phones and the server): all succeed`, { timeout: 120_000 }, async (t) => {
    t.diagnostic(world.target.description);
    let loss: LoopbackUdpLoss | undefined;
    let serverPort = 0;
    try {
      await world.runCalls(t, undefined, async (ports) => {
        serverPort = ports.server;
        loss = await LoopbackUdpLoss.apply([ports.a, ports.b, ports.server], LOSS_PERCENT / 100);
        t.diagnostic(`loss method: ${loss.method}`);
      });
      const toServer = await loss!.droppedPackets(serverPort);
      const total = await loss!.droppedPackets();
      t.diagnostic(`datagrams the kernel dropped: ${total} (${toServer} to the server, ${total - toServer} to the phones)`);
      assert.ok(total > 0, 'the kernel really dropped SIP datagrams');
    } finally {
      await loss?.remove();
    }
  });
});
