import type { Clock } from '../../common/clock';
import { parseSipUri } from '../message/sip-uri';
import type { FlowBindings } from '../registrar/flow-bindings';
import type { Flow } from '../transport/flow';

/**
 * How long an in-dialog request to a peer reachable only over its own connection (a webphone's
 * `.invalid` Contact, a `transport=ws` target) waits for that peer to connect and register again
 * when its connection is gone. A webphone's WebSocket drops when ferry sip restarts or the network
 * blips; JsSIP keeps its call, reconnects (2 s, then backing off) and registers again, and the BYE
 * that ends its call must reach it then rather than fail at once.
 */
export const RECONNECTING_FLOW_WAIT_MS = 8000;
const POLL_MS = 50;

/** true for a target only a registered connection can reach */
export function needsBoundFlow(target: string): boolean {
  const u = parseSipUri(target.startsWith('sip') ? target : `sip:${target}`);
  if (!u) return false;
  const transport = (u.params.get('transport') ?? '').toLowerCase();
  return u.host.toLowerCase().endsWith('.invalid') || transport === 'ws' || transport === 'wss';
}

/** Resolves with the flow bound to `target` once there is one, or undefined after `waitMs`. */
export async function waitForBoundFlow(bindings: FlowBindings, target: string, clock: Clock, waitMs = RECONNECTING_FLOW_WAIT_MS): Promise<Flow | undefined> {
  const until = clock.now() + waitMs;
  for (;;) {
    const flow = bindings.lookup(target);
    if (flow) return flow;
    if (clock.now() >= until) return undefined;
    await new Promise<void>((r) => clock.setTimeout(r, POLL_MS));
  }
}
