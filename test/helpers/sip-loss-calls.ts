/**
 * The bridged-call harness of the packet-loss acceptance tests (test/integration/sip-srf-loss*.test.ts):
 * a drachtio-srf createB2BUA app bridges caller SIPp A to callee SIPp B through the SIP server under
 * test (ferry sip, or a real drachtio-server when DRACHTIO_URL is set) with the standard RFC 3261
 * timers (T1 = 500 ms). `runCalls` places LOSS_CALLS calls and checks every one completed, both phones
 * succeeded and the app released every call; the loss itself is the caller's: SIPp's own `-lost`, or
 * kernel loss set up on the ports handed to `withPorts` before the phones start.
 */
import assert from 'node:assert/strict';
import type Srf from 'drachtio-srf';
import { startSipServerTarget, type SipServerTarget } from './sip-engine-process';
import { connectSrf, destroyDialog, waitFor, type ConnectedSrf } from './srf-app';
import { freePorts } from './free-port';
import { startSipp, killAllSipp, describeSipp, type SippResult } from './sipp';

export const LOSS_CALLS = 10;
export const LOSS_PERCENT = 10;

/** Messages a SIPp received more than once (same start line, Call-ID and CSeq): the server's retransmissions. */
export function duplicatesReceived(r: SippResult): number {
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

/**
 * The call of a SIPp trace that took longest (first to last message of one Call-ID), with its messages
 * as offsets in ms: "Call-ID 4.2 s: +0 sent INVITE, +3 received 200, ...". Tells which message a slow
 * run waited on.
 */
export function slowestCall(r: SippResult): string {
  const calls = new Map<string, { at: number; what: string }[]>();
  const re = /-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n(?:UDP|TCP) message (sent|received)[^\n]*\n\n([^\n]*)\n([\s\S]*?)(?=\n-{10,} |$)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(r.messages)) !== null) {
    const at = Date.parse(`${m[1].replace(' ', 'T').slice(0, 23)}Z`);
    const callId = /^Call-ID:\s*(\S+)/im.exec(m[4])?.[1] ?? '?';
    const list = calls.get(callId) ?? [];
    const firstLine = m[3].trim();
    list.push({ at, what: `${m[2]} ${firstLine.startsWith('SIP/2.0 ') ? firstLine.slice(8) : firstLine.split(' ')[0]}` });
    calls.set(callId, list);
  }
  let worst: [string, { at: number; what: string }[]] | undefined;
  const span = (l: { at: number }[]): number => l[l.length - 1]!.at - l[0]!.at;
  for (const entry of calls) if (!worst || span(entry[1]) > span(worst[1])) worst = entry;
  if (!worst) return 'no traced call';
  const t0 = worst[1][0]!.at;
  return `${worst[0]} ${(span(worst[1]) / 1000).toFixed(1)} s: ${worst[1].map((e) => `+${e.at - t0} ${e.what}`).join(', ')}`;
}

/** Messages SIPp dropped on purpose (-lost), as its message trace reports them. */
export function voluntarilyLost(r: SippResult): number {
  return (r.messages.match(/message voluntary lost/g) ?? []).length;
}

export interface LossRun {
  a: SippResult;
  b: SippResult;
}

export interface LossPorts {
  a: number;
  b: number;
  server: number;
}

export interface LossWorld {
  target: SipServerTarget;
  /**
   * Runs LOSS_CALLS bridged calls (A: uac-call, B: uas-answer) with SIPp `-lost sippLossPercent` (none
   * when undefined) and checks every one completed, both phones succeeded and the app released every
   * call. (Retransmissions are reported, not asserted: with kernel loss a phone never sees the dropped
   * copy, so a server retransmission looks like a first copy.)
   */
  runCalls(t: { diagnostic(m: string): void }, sippLossPercent: number | undefined, withPorts?: (ports: LossPorts) => Promise<void>): Promise<LossRun>;
  close(): Promise<void>;
}

export async function startLossWorld(label: string): Promise<LossWorld> {
  const target = await startSipServerTarget();
  console.log(`${label}: ${target.description}`);
  let bLegUri = '';
  let bridged = 0;
  let released = 0;
  const failures: string[] = [];
  let app: ConnectedSrf;
  try {
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
  } catch (err) {
    await target.stop();
    throw err;
  }

  async function runCalls(t: { diagnostic(m: string): void }, sippLossPercent: number | undefined,
    withPorts: (ports: LossPorts) => Promise<void> = async () => {}): Promise<LossRun> {
    bridged = 0;
    released = 0;
    failures.length = 0;
    const [aPort, bPort] = await freePorts(2, { protocols: ['udp'] });
    await withPorts({ a: aPort, b: bPort, server: Number(app.sipAddress('udp').split(':').pop()) });
    const b = await startSipp({
      scenario: 'uas-answer.xml',
      localPort: bPort,
      calls: LOSS_CALLS,
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
      calls: LOSS_CALLS,
      rate: 5,
      lossPercent: sippLossPercent,
      talkMs: 500,
      lingerMs: 4000,
      timeoutS: 50,
    });
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.equal(ra.exitCode, 0, `caller A: ${describeSipp(ra)}`);
    assert.equal(rb.exitCode, 0, `callee B: ${describeSipp(rb)}`);
    assert.equal(ra.stats?.successfulCalls, LOSS_CALLS, describeSipp(ra));
    assert.equal(ra.stats?.failedCalls, 0, describeSipp(ra));
    assert.equal(rb.stats?.successfulCalls, LOSS_CALLS, describeSipp(rb));
    await waitFor(() => released === LOSS_CALLS || failures.length > 0, 'every call released by the app', 40_000);
    assert.deepEqual(failures, []);
    assert.equal(bridged, LOSS_CALLS, 'the app bridged every call');
    assert.equal(released, LOSS_CALLS);
    t.diagnostic(`messages the phones received more than once (server retransmissions SIPp saw): ` +
      `${duplicatesReceived(ra) + duplicatesReceived(rb)}; SIPp's own retransmissions: caller ` +
      `${ra.stats?.retransmissions}, callee ${rb.stats?.retransmissions}`);
    t.diagnostic(`slowest call at the caller: ${slowestCall(ra)}`);
    t.diagnostic(`slowest call at the callee: ${slowestCall(rb)}`);
    assert.equal((app.srf as unknown as { _dialogs: Map<string, unknown> })._dialogs.size, 0, 'no dialog left in srf');
    return { a: ra, b: rb };
  }

  return {
    target,
    runCalls,
    async close() {
      killAllSipp();
      app.close();
      await target.stop();
    },
  };
}
