/**
 * Floods of new requests from one source (SourcePeer) at ferry sip, for the per-source request rate tests: a
 * peer closed after the test, batched sending that waits for the engine to deal with each batch, and a call
 * from the source set up before its flood.
 */
import type { RunningSipEngine } from '../../src/sip/sip-engine-server';
import { SourcePeer, requestIds, type PeerAnswer, type RequestIds } from './sip-source-peer';
import { pollUntil } from './wait-for';

/** a SourcePeer on `address` sending to ferry sip's UDP port `sipPort`; its close goes to `cleanups` */
export async function openSourcePeer(address: string, sipPort: number, cleanups: Array<() => unknown>): Promise<SourcePeer> {
  const p = await SourcePeer.open(address, sipPort);
  cleanups.push(() => p.close());
  return p;
}

/**
 * Sends `n` requests from `p` (the i-th made by `make`) in batches of `batch` (loopback UDP drops large bursts),
 * each batch once the engine has dealt with the previous one (every request answered or counted by `dropped`).
 * Returns their Call-IDs.
 */
export async function floodInBatches(p: SourcePeer, n: number, make: (i: number, ids: RequestIds) => string, dropped: () => number, batch: number): Promise<string[]> {
  const all: string[] = [];
  for (let sent = 0; sent < n;) {
    const droppedBefore = dropped();
    const ids: string[] = [];
    for (const end = Math.min(n, sent + batch); sent < end; sent++) {
      const r = requestIds();
      ids.push(r.callId);
      p.send(make(sent, r));
    }
    all.push(...ids);
    await pollUntil(() => p.answeredOf(ids) + dropped() - droppedBefore === ids.length,
      { timeoutMs: 5_000, what: `each of a batch of ${ids.length} requests from ${p.address} answered or dropped` });
  }
  return all;
}

/** An INVITE from `p` to `call` (takes one token), answered 200 and ACKed, its dialog up: the call's ids and its 200. */
export async function answeredCallFrom(p: SourcePeer, engine: RunningSipEngine): Promise<{ call: RequestIds; ok: PeerAnswer }> {
  const call = requestIds();
  p.send(p.request('INVITE', call, 'call'));
  const ok = await pollUntil(() => p.answersTo(call.callId).find((a) => a.status === 200), { timeoutMs: 5_000, what: 'the call answered' });
  p.send(p.inDialog('ACK', ok));
  await pollUntil(() => engine.engine.stats().dialogs === 1, { timeoutMs: 5_000, what: 'the call\'s dialog' });
  return { call, ok };
}
