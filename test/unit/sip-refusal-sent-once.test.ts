/**
 * The answers the gateway gives an INVITE before (or instead of) authenticating it — 403 to a locked-out
 * source, 488 to a hostile SDP — and ferry sip's 481 to an INVITE for no dialog are sent once over UDP,
 * like a challenge (RFC 3261 §26.3.2.4: questionable requests get a single response): the INVITE's source
 * can be forged, and Timer G made one datagram worth a 100 and eleven such answers at the address it named
 * (measured: 1 in, 12 out, for a 488 and a 481). A retransmitted INVITE still gets the answer; a 486 (an
 * answer to a caller the gateway let through) is still retransmitted: the positive control, same clock.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import type { SipRequest } from '../../src/sip/message/sip-message';
import { ServerInviteTransaction } from '../../src/sip/transaction/server-invite-transaction';
import { DEFAULT_TIMERS } from '../../src/sip/transaction/timer-config';
import { makeResponse } from '../../src/sip/engine/message-builders';
import { RecordingUdpFlow, strangerInvite } from '../helpers/recording-udp-flow';

const invite = (): SipRequest => strangerInvite('refuse');

describe('refusals of questionable INVITEs are sent once over UDP', () => {
  for (const status of [403, 481, 488]) {
    test(`${status}: once in 64 x T1, again for a retransmitted INVITE, ended by Timer H; a 486 is retransmitted`, { timeout: 10_000 }, () => {
      const clock = new FakeClock();
      const flow = new RecordingUdpFlow();
      const req = invite();
      const ist = new ServerInviteTransaction(req, flow, clock, DEFAULT_TIMERS, () => {});
      ist.respond(makeResponse(req, status, 'totag'));
      clock.advance(10_000);
      assert.equal(flow.count(`SIP/2.0 ${status}`), 1, `no Timer G retransmission of the ${status}`);
      ist.receiveRetransmission();
      assert.equal(flow.count(`SIP/2.0 ${status}`), 2, 'a retransmitted INVITE still gets it');
      clock.advance(64 * DEFAULT_TIMERS.t1 - 10_000);
      assert.equal(ist.currentState, 'terminated', 'Timer H');

      const flow2 = new RecordingUdpFlow();
      const ist2 = new ServerInviteTransaction(req, flow2, clock, DEFAULT_TIMERS, () => {});
      ist2.respond(makeResponse(req, 486, 'totag'));
      clock.advance(10_000);
      assert.equal(flow2.count('SIP/2.0 486'), 5, 'positive control: a 486 is retransmitted by Timer G');
    });
  }
});
