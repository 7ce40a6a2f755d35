import type { DialogOwners } from './dialog-owners';
import type { EngineContext } from './engine-context';
import { makeResponse } from './message-builders';
import type { UacCore } from './uac-core';
import type { UasCore } from './uas-core';

export interface GracefulStopResult {
  byes: number;
  answered: number;
  waitedMs: number;
}

/**
 * Graceful stop, first half: no party is left in a call with nobody. Refuses new calls, answers what
 * waits for an app (a BYE 200, other in-dialog requests 481, new requests 503), cancels outgoing
 * INVITEs, BYEs every confirmed dialog with `reason`, and waits for the BYEs' answers up to `maxWaitMs`.
 */
export async function endAllDialogs(ctx: EngineContext, parts: { uas: UasCore; uac: UacCore; owners: DialogOwners },
  reason: string, maxWaitMs: number): Promise<GracefulStopResult> {
  const started = ctx.clock.now();
  ctx.lifecycle.closing = true;
  ctx.restartHeld.expireAll();
  ctx.unroutedHold.expireAll();
  parts.uas.answerAllPending();
  const early = parts.uac.abandonAllInvites();
  const byes: Array<Promise<number>> = [];
  for (const d of ctx.dialogs.all()) {
    if (early.has(d)) continue;
    const held = parts.owners.release(d);
    const peerHungUp = held.some((h) => h.request.method === 'BYE');
    for (const h of held) {
      if (!h.txn.finalSent && !h.txn.terminated) h.txn.respond(makeResponse(h.request, h.request.method === 'BYE' ? 200 : 481, d.localTag));
    }
    if (peerHungUp) {
      ctx.dialogs.end(d, 'bye');
      continue;
    }
    ctx.log.info('dialog ended at shutdown: BYE sent', { callId: d.callId, dialogId: d.id, reason });
    byes.push(parts.uac.sendEngineBye(d, reason));
  }
  let answered = 0;
  for (const b of byes) void b.then((status) => { if (status > 0) answered++; });
  if (byes.length) {
    await new Promise<void>((resolve) => {
      const timer = ctx.clock.setTimeout(resolve, maxWaitMs);
      void Promise.all(byes).then(() => { timer.cancel(); resolve(); });
    });
  }
  const result = { byes: byes.length, answered, waitedMs: ctx.clock.now() - started };
  ctx.log.info('ferry sip stopping: dialogs ended', result);
  return result;
}
