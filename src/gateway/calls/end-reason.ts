/**
 * Why a call ended: the lifecycle signals (docs/lifecycle.md) plus the ways a call
 * fails before it is answered. The first reason recorded wins; later ones are timeline evidence.
 */
export const END_REASONS = [
  'sip-bye',
  'sip-cancel',
  'rtcp-bye',
  'dtls-close',
  'icmp-unreachable',
  'ice-failed',
  'media-timeout',
  'hold-timeout',
  'control-release',
  'session-expired',
  'busy',
  'no-answer',
  'declined',
  'not-found',
  'unavailable',
  'failed',
  'media-error',
  // the media server was lost (killed, restarted, unreachable) and the call's pipeline did not survive it
  'media-lost',
  // the media server refused the call's pipeline or endpoints: it is full (its quotas, NOT_ENOUGH_RESOURCES)
  'media-overloaded',
  // hung up through the REST API (DELETE /api/calls/:id)
  'api-hangup',
  // attended transfer: the transferor's consultation call, whose other party joined the transferee's call
  'transferred',
] as const;

export type EndReason = (typeof END_REASONS)[number];

export function isEndReason(x: unknown): x is EndReason {
  return typeof x === 'string' && (END_REASONS as readonly string[]).includes(x);
}

/** The reason a final SIP failure response from the called party stands for. */
export function reasonForStatus(status: number): EndReason {
  if (status === 486 || status === 600) return 'busy';
  if (status === 408 || status === 480) return 'no-answer';
  // 410: the binding's connection is gone; 503: the called party or its trunk cannot be reached now
  if (status === 410 || status === 503) return 'unavailable';
  if (status === 603) return 'declined';
  if (status === 404 || status === 604) return 'not-found';
  if (status === 487) return 'sip-cancel';
  return 'failed';
}
