/**
 * Acceptance: under 10% packet loss the transaction layer completes every call by
 * retransmission — the loss made by SIPp's own `-lost 10` on both phones: each SIPp drops 10% of the
 * SIP messages it sends and 10% of those it receives (so each hop of the call loses up to ~19%). A
 * drachtio-srf createB2BUA app bridges caller SIPp A to callee SIPp B through the SIP server under
 * test, with the server's standard RFC 3261 timers (T1 = 500 ms). Kernel loss (iptables) is the other
 * method: test/integration/sip-srf-loss.test.ts.
 *
 * Runs against ferry sip, or a real drachtio-server when DRACHTIO_URL is set.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LOSS_CALLS, LOSS_PERCENT, startLossWorld, voluntarilyLost, type LossWorld } from '../helpers/sip-loss-calls';

describe(`${LOSS_PERCENT}% packet loss made by SIPp: every call completes by retransmission`, () => {
  let world: LossWorld;

  before(async () => {
    world = await startLossWorld('sip-srf-loss-sipp');
  });

  after(async () => {
    await world?.close();
  });

  test(`${LOSS_CALLS} B2BUA calls with SIPp -lost ${LOSS_PERCENT} on both phones (UDP, standard timers): all succeed`, { timeout: 120_000 }, async (t) => {
    t.diagnostic(world.target.description);
    t.diagnostic(`loss method: SIPp -lost ${LOSS_PERCENT} on caller and callee (drops sent and received SIP messages)`);
    const { a, b } = await world.runCalls(t, LOSS_PERCENT);
    const lost = voluntarilyLost(a) + voluntarilyLost(b);
    t.diagnostic(`SIP messages SIPp dropped on purpose: ${lost}`);
    assert.ok(lost > 0, 'SIPp really dropped messages');
  });
});
