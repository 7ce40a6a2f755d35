/**
 * RFC 3261 §26.3.2.4: a UAS challenges questionable requests with a single 401/407, forgoing the response
 * retransmission algorithm. Over UDP the source of an INVITE can be forged, and Timer G would send a 407
 * up to five times to whoever the forger names (measured before: 67 774 407s for 15 536 INVITEs of a
 * flood). The INVITE server transaction therefore sends a challenge once; it still answers a retransmitted
 * INVITE with it, absorbs the ACK and ends at Timer H. Another non-2xx final (486) is still retransmitted:
 * the positive control on the same fake clock.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import type { SipRequest } from '../../src/sip/message/sip-message';
import { ServerInviteTransaction } from '../../src/sip/transaction/server-invite-transaction';
import { DEFAULT_TIMERS } from '../../src/sip/transaction/timer-config';
import { makeResponse } from '../../src/sip/engine/message-builders';
import { RecordingUdpFlow, strangerInvite } from '../helpers/recording-udp-flow';

const invite = (): SipRequest => strangerInvite('once');

describe('a 401/407 challenge is sent once (RFC 3261 §26.3.2.4)', () => {
  for (const status of [401, 407]) {
    test(`${status} over UDP: once in 64 x T1, again for a retransmitted INVITE, the ACK absorbed, ended by Timer H; a 486 is retransmitted`, { timeout: 10_000 }, () => {
      const clock = new FakeClock();
      const flow = new RecordingUdpFlow();
      const req = invite();
      let ackTimeouts = 0;
      const ist = new ServerInviteTransaction(req, flow, clock, DEFAULT_TIMERS, () => {}, { onAckTimeout: () => { ackTimeouts++; } });
      ist.respond(makeResponse(req, status, 'totag'));
      clock.advance(10_000);
      assert.equal(flow.count(`SIP/2.0 ${status}`), 1, 'no Timer G retransmission of the challenge');
      ist.receiveRetransmission();
      assert.equal(flow.count(`SIP/2.0 ${status}`), 2, 'a retransmitted INVITE still gets it');
      assert.equal(ist.currentState, 'completed');
      clock.advance(64 * DEFAULT_TIMERS.t1 - 10_000);
      assert.equal(ist.currentState, 'terminated', 'Timer H');
      assert.equal(ackTimeouts, 1);

      // positive control: a 486 on the same kind of flow is retransmitted by Timer G
      const flow2 = new RecordingUdpFlow();
      const ist2 = new ServerInviteTransaction(req, flow2, clock, DEFAULT_TIMERS, () => {});
      ist2.respond(makeResponse(req, 486, 'totag'));
      clock.advance(10_000);
      assert.equal(flow2.count('SIP/2.0 486'), 5);

      // the ACK of a challenge is absorbed by its transaction
      const flow3 = new RecordingUdpFlow();
      const ist3 = new ServerInviteTransaction(req, flow3, clock, DEFAULT_TIMERS, () => {});
      ist3.respond(makeResponse(req, status, 'totag'));
      assert.equal(ist3.receiveAck(), true);
      assert.equal(ist3.currentState, 'confirmed');
    });
  }
});
