import type { StateStore } from '../state/state-store';
import type { FailedAnswer, FlowBoundRegistrations } from './flow-binding';

/**
 * A registered user's binding is stale when ferry sip could not send a request to it: no status (nothing
 * could carry it) or 410 Gone (the connection the user registered over has closed). A 503 is not proof:
 * it may be a passing state of ferry sip (its restart, before the webphone registered again).
 */
export function isStaleBindingFailure(status: number | undefined): boolean {
  return !status || status === 410;
}

/** What a call that tried the binding notes (and when it began: a binding registered again since then is not the one it tried). */
interface NotedCall {
  note(kind: string, detail: string): void;
  readonly record?: { readonly createdAt: number };
}

/**
 * Forgets a registered user's binding that a request could not reach, so the next call, transfer or
 * API call does not try it again; a target that is not a registration (a trunk) is left alone.
 * With `flows`, a binding that lives on a connection goes as flow-bound.ts decides (ferry sip's `410`,
 * or its "no connection" `503` once the reconnection grace is over: `registration.changed`, reason
 * `flow-closed`). Returns whether it was forgotten.
 */
export async function forgetStaleBinding(store: Pick<StateStore, 'removeRegistration'>, target: { user?: string; uri: string },
  answer: number | FailedAnswer | undefined, call: NotedCall, flows?: FlowBoundRegistrations): Promise<boolean> {
  if (!target.user) return false;
  const failed: FailedAnswer | undefined = typeof answer === 'number' ? { status: answer } : answer;
  const verdict = flows ? await flows.requestFailed(target, failed, call.record?.createdAt).catch(() => undefined) : undefined;
  if (verdict === 'removed' || verdict === 'absent') {
    call.note('stale-registration-removed', target.uri);
    return true;
  }
  // registered again over a new connection while the request was on the way: kept
  if (verdict === 'renewed') return false;
  if (!isStaleBindingFailure(failed?.status)) return false;
  await store.removeRegistration(target.user, target.uri).catch(() => {});
  call.note('stale-registration-removed', target.uri);
  return true;
}

/**
 * A call to a registered user tried one of its registrations and it failed with `status`: does the call
 * go on to the user's next registration? Yes when the registration is stale (it is forgotten), and when
 * the device could not take the call at all — 503 (it, or ferry sip's way to it, cannot serve now) or
 * 408 (no final answer to the INVITE): those say nothing about the person, so another device of theirs
 * is tried, and the registration is kept (noted `registration-unavailable`). Not after the person's or
 * the device's own answer: busy (486), declined (603), a live phone's 480, or any other status.
 */
export async function movesToNextRegistration(store: Pick<StateStore, 'removeRegistration'>, target: { user?: string; uri: string },
  answer: number | FailedAnswer | undefined, call: NotedCall, flows?: FlowBoundRegistrations): Promise<boolean> {
  if (!target.user) return false;
  if (await forgetStaleBinding(store, target, answer, call, flows)) return true;
  const status = typeof answer === 'number' ? answer : answer?.status;
  // a binding that lives on a connection and was registered again meanwhile: this try failed, the binding stays
  if (flows && (status === 410 || status === 430)) {
    call.note('registration-unavailable', `${status} ${target.uri}`);
    return true;
  }
  if (status !== 503 && status !== 408) return false;
  call.note('registration-unavailable', `${status} ${target.uri}`);
  return true;
}
