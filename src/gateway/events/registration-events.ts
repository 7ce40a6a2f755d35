import type { ReachabilityChange } from '../registrar/qualify';
import type { CallEventInput } from './call-events';

/**
 * `registration.unreachable` / `registration.reachable` (docs/webhooks.md): a binding qualify marked
 * unreachable, or whose mark an answered ping or a new REGISTER cleared. Published by the gateway that
 * pings the binding (the one that took its REGISTER), once per change. Times are epoch ms like every
 * other time in the events; `unreachableSince` is when the mark was set.
 */
export function reachabilityEvent(change: ReachabilityChange): CallEventInput {
  const { to, ...rest } = change;
  return { type: to === 'unreachable' ? 'registration.unreachable' : 'registration.reachable', data: { ...rest } };
}
