/**
 * The BYE ferry sip sends when the ACK to a 200 never comes carries drachtio-server's
 * `Reason: SIP ;cause=200 ;text="ACK timeout"`, so the unmodified drachtio-srf reports `ACK timeout`
 * as the dialog's destroy reason (srf reads the Reason text of an "unsolicited" BYE).
 *
 * ferry sip runs in-process on a FakeClock with the default RFC 3261 timers: the test advances the
 * clock past timer H (64*T1 = 32 s) instead of waiting. A SIPp caller never ACKs and answers the BYE.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type Srf from 'drachtio-srf';
import { FakeClock } from '../../src/common/clock';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectSrf, g711Sdp, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { freePort } from '../helpers/free-port';
import { pollPause } from '../helpers/wait-for';
import { startSipp, killAllSipp, describeSipp, countReceived, tracedMessages, headerOf } from '../helpers/sipp';

describe('ferry sip: ACK timeout BYE carries drachtio-server\'s Reason, srf reports "ACK timeout"', () => {
  const clock = new FakeClock(Date.now());
  let engine: RunningSipEngine;
  let app: ConnectedSrf;
  const destroyed: Array<{ source: string; reason: string }> = [];

  before(async () => {
    engine = await startSipEngine({ clock });
    app = await connectSrf({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' }, (srf: Srf) => {
      srf.invite(async (req, res) => {
        const uas = await srf.createUAS(req, res, { localSdp: g711Sdp(32000) });
        uas.on('destroy', (bye: Srf.SrfRequest, reason?: string) => {
          destroyed.push({ source: (bye as unknown as { meta?: { source?: string } }).meta?.source ?? '?', reason: reason ?? '' });
        });
      });
    });
  });

  /** Advances the fake clock 500 ms at a time, letting real I/O run between steps, until `done()` (fake 60 s at most). */
  async function advanceUntil(done: () => boolean, what: string): Promise<void> {
    for (let fakeMs = 0; !done(); fakeMs += 500) {
      if (fakeMs > 60_000) throw new Error(`fake clock advanced 60 s without ${what}`);
      clock.advance(500);
      await pollPause(10);
    }
  }

  after(async () => {
    killAllSipp();
    app?.close();
    await engine?.close();
  });

  test('caller never ACKs: after timer H the BYE has Reason "SIP ;cause=200 ;text=\\"ACK timeout\\"" and srf emits destroy with "ACK timeout"', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const caller = await startSipp({ scenario: 'uac-no-ack.xml', localPort: port, remote: `127.0.0.1:${engine.ports.sip}`, timeoutS: 20 });
    await waitFor(() => engine.engine.stats().dialogs === 1, 'the dialog of the answered INVITE');
    assert.equal(destroyed.length, 0, 'no destroy before timer H (control: the dialog exists)');
    // timer H (64*T1 = 32 s): the fake clock advances in 500 ms steps, so the 200 retransmissions run too
    await advanceUntil(() => destroyed.length === 1, "srf's destroy after the server's BYE");
    const result = await caller.done;
    assert.equal(result.exitCode, 0, describeSipp(result));
    assert.equal(countReceived(result, /^ACK /), 0);
    const byes = tracedMessages(result).filter((m) => m.direction === 'received' && /^BYE /.test(m.firstLine));
    assert.ok(byes.length >= 1, 'the caller got the BYE');
    assert.equal(headerOf(byes[0]!, 'Reason'), 'SIP ;cause=200 ;text="ACK timeout"');
    assert.deepEqual(destroyed, [{ source: 'application', reason: 'ACK timeout' }]);
    await advanceUntil(() => engine.engine.stats().clientTransactions === 0 && engine.engine.stats().serverTransactions === 0, 'the transactions to end');
    const s = engine.engine.stats();
    assert.equal(s.dialogs, 0);
    assert.equal(s.pending, 0);
    assert.equal((app.srf as unknown as { _dialogs: Map<string, unknown> })._dialogs.size, 0, 'no dialog left in srf');
  });
});
