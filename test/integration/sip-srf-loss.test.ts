/**
 * Acceptance: under 10% packet loss the transaction layer completes every call by
 * retransmission. A drachtio-srf createB2BUA app bridges caller SIPp A to callee SIPp B through the
 * SIP server under test, with the server's standard RFC 3261 timers (T1 = 500 ms). Two loss methods:
 *  - SIPp's own `-lost 10` on both phones: each SIPp drops 10% of the SIP messages it sends and 10%
 *    of those it receives (so each hop of the call loses up to ~19%);
 *  - kernel loss: iptables drops 10% of the UDP datagrams sent to either phone or to the server on
 *    loopback (test/helpers/loopback-udp-loss.ts; `tc netem` is not available in this kernel).
 *
 * Runs against ferry sip, or a real drachtio-server when DRACHTIO_URL is set.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type Srf from 'drachtio-srf';
import { startSipServerTarget, type SipServerTarget } from '../helpers/sip-engine-process';
import { connectSrf, destroyDialog, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { freePorts } from '../helpers/free-port';
import { startSipp, killAllSipp, describeSipp, type SippResult } from '../helpers/sipp';
import { LoopbackUdpLoss } from '../helpers/loopback-udp-loss';

const CALLS = 10;
const LOSS_PERCENT = 10;

/** Messages a SIPp received more than once (same start line, Call-ID and CSeq): the server's retransmissions. */
function duplicatesReceived(r: SippResult): number {
  const seen = new Map<string, number>();
  const re = /message received[^\n]*\n\n([^\n]*)\n([\s\S]*?)(?=\n-{10,} |$)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(r.messages)) !== null) {
    const callId = /^Call-ID:\s*(\S+)/im.exec(m[2])?.[1] ?? '';
    const cseq = /^CSeq:\s*([^\r\n]+)/im.exec(m[2])?.[1]?.trim() ?? '';
    const key = `${m[1].trim()}|${callId}|${cseq}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  let dups = 0;
  for (const n of seen.values()) dups += n - 1;
  return dups;
}

/** Messages SIPp dropped on purpose (-lost), as its message trace reports them. */
function voluntarilyLost(r: SippResult): number {
  return (r.messages.match(/message voluntary lost/g) ?? []).length;
}

describe(`${LOSS_PERCENT}% packet loss: every call completes by retransmission`, () => {
  let target: SipServerTarget;
  let app: ConnectedSrf;
  let bLegUri = '';
  let bridged = 0;
  let released = 0;
  const failures: string[] = [];

  before(async () => {
    target = await startSipServerTarget();
    console.log(`sip-srf-loss: ${target.description}`);
    app = await connectSrf(target.control, (srf: Srf) => {
      srf.invite(async (req, res) => {
        try {
          const { uas, uac } = await srf.createB2BUA(req, res, bLegUri, { localSdpB: req.body });
          bridged++;
          let done = false;
          const release = (other: Srf.Dialog) => () => {
            if (done) return;
            done = true;
            destroyDialog(other).then(
              () => released++,
              (e: unknown) => failures.push(`BYE failed: ${String(e)}`),
            );
          };
          uas.on('destroy', release(uac));
          uac.on('destroy', release(uas));
        } catch (e) {
          failures.push(`createB2BUA failed: ${(e as { status?: number }).status ?? String(e)}`);
        }
      });
    });
  });

  after(async () => {
    killAllSipp();
    app?.close();
    await target?.stop();
  });

  interface LossRun {
    a: SippResult;
    b: SippResult;
  }

  /**
   * Runs CALLS bridged calls (A: uac-call, B: uas-answer) and checks every one completed, both phones
   * succeeded and the app released every call. (Retransmissions are reported, not asserted: with
   * kernel loss a phone never sees the dropped copy, so a server retransmission looks like a first copy.)
   */
  async function runCalls(t: { diagnostic(m: string): void }, sippLossPercent: number | undefined,
    withPorts: (ports: { a: number; b: number; server: number }) => Promise<void> = async () => {}): Promise<LossRun> {
    bridged = 0;
    released = 0;
    failures.length = 0;
    const [aPort, bPort] = await freePorts(2, { protocols: ['udp'] });
    await withPorts({ a: aPort, b: bPort, server: Number(app.sipAddress('udp').split(':').pop()) });
    const b = await startSipp({
      scenario: 'uas-answer.xml',
      localPort: bPort,
      calls: CALLS,
      lossPercent: sippLossPercent,
      lingerMs: 12_000, // keep answering retransmitted BYEs after the call
      timeoutS: 50,
    });
    await b.ready();
    bLegUri = `sip:callee@127.0.0.1:${bPort}`;
    const a = await startSipp({
      scenario: 'uac-call.xml',
      localPort: aPort,
      remote: app.sipAddress('udp'),
      calls: CALLS,
      rate: 5,
      lossPercent: sippLossPercent,
      talkMs: 500,
      lingerMs: 4000,
      timeoutS: 50,
    });
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.equal(ra.exitCode, 0, `caller A: ${describeSipp(ra)}`);
    assert.equal(rb.exitCode, 0, `callee B: ${describeSipp(rb)}`);
    assert.equal(ra.stats?.successfulCalls, CALLS, describeSipp(ra));
    assert.equal(ra.stats?.failedCalls, 0, describeSipp(ra));
    assert.equal(rb.stats?.successfulCalls, CALLS, describeSipp(rb));
    await waitFor(() => released === CALLS || failures.length > 0, 'every call released by the app', 40_000);
    assert.deepEqual(failures, []);
    assert.equal(bridged, CALLS, 'the app bridged every call');
    assert.equal(released, CALLS);
    t.diagnostic(`messages the phones received more than once (server retransmissions SIPp saw): ` +
      `${duplicatesReceived(ra) + duplicatesReceived(rb)}; SIPp's own retransmissions: caller ` +
      `${ra.stats?.retransmissions}, callee ${rb.stats?.retransmissions}`);
    assert.equal((app.srf as unknown as { _dialogs: Map<string, unknown> })._dialogs.size, 0, 'no dialog left in srf');
    return { a: ra, b: rb };
  }

  test(`${CALLS} B2BUA calls with SIPp -lost ${LOSS_PERCENT} on both phones (UDP, standard timers): all succeed`, { timeout: 120_000 }, async (t) => {
    t.diagnostic(target.description);
    t.diagnostic(`loss method: SIPp -lost ${LOSS_PERCENT} on caller and callee (drops sent and received SIP messages)`);
    const { a, b } = await runCalls(t, LOSS_PERCENT);
    const lost = voluntarilyLost(a) + voluntarilyLost(b);
    t.diagnostic(`SIP messages SIPp dropped on purpose: ${lost}`);
    assert.ok(lost > 0, 'SIPp really dropped messages');
  });

  test(`${CALLS} B2BUA calls with ${LOSS_PERCENT}% kernel packet loss (iptables statistic DROP on loopback UDP to both phones and the server): all succeed`, { timeout: 120_000 }, async (t) => {
    t.diagnostic(target.description);
    let loss: LoopbackUdpLoss | undefined;
    let serverPort = 0;
    try {
      await runCalls(t, undefined, async (ports) => {
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
