import type { SipRequest } from '../message/sip-message';

/**
 * SUBSCRIBE dialogs (RFC 6665) as drachtio-server keeps them: a 200 or 202 to a SUBSCRIBE creates a
 * dialog (either side), and the dialog ends once a NOTIFY whose Subscription-State is `terminated`
 * has its final response (whatever the status). drachtio-server runs no timer of its own for a
 * subscription's expiry: the notifier's app ends it with that NOTIFY.
 */

/** true for a final 200/202 to a SUBSCRIBE: the answer that creates the subscription's dialog */
export function isSubscriptionAccepted(req: SipRequest, status: number): boolean {
  return req.method === 'SUBSCRIBE' && (status === 200 || status === 202);
}

/** true for a final response to a NOTIFY that ends its subscription (`Subscription-State: terminated;...`) */
export function subscriptionTerminated(req: SipRequest, status: number): boolean {
  return req.method === 'NOTIFY' && status >= 200 && /^\s*terminated\b/i.test(req.headers.get('Subscription-State') ?? '');
}
