/**
 * Requests inside a call are not held to the per-source rate of new requests (a call must not lose its BYE),
 * so a party in a call — an authenticated user, a trusted trunk — can send INFO, hold/resume re-INVITEs or
 * refused SDP as fast as it likes. Each is still served (relayed, answered), but each used to add an entry to
 * the call's timeline — the record the state store keeps and rewrites whole on every change, that the API
 * returns and the CDR reads — and a log line, without bound: 2000 INFOs made 2000 entries. Now a timeline
 * keeps at most MAX_TIMELINE_ENTRIES_PER_KIND entries of one kind and one `timeline-limited` entry saying so;
 * the requests are served as before and the call's end is still recorded. Re-offers are also held to a rate per
 * party since (gateway-call-reinvite-storm.test.ts): past REOFFER_BURST they are answered 503, and the timeline
 * bounds those refusals alike.
 *
 * The real Call with stand-in dialogs of srf's Dialog shape (as test/unit/gateway-call-reoffer-sdp.test.ts),
 * on the in-memory state store; its log lines through a real winston logger.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../src/common/clock';
import { Call, MAX_TIMELINE_ENTRIES_PER_KIND, REOFFER_BURST } from '../../src/gateway/calls/call';
import type { InDialogRequest } from '../../src/gateway/calls/dialog-like';
import type { CallRecord } from '../../src/gateway/state/call-record';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { captureLog } from '../helpers/captured-log';
import { answeredCallRecord, partySdp as sdp, StandInDialog } from '../helpers/stand-in-call-dialogs';
import { pollUntil } from '../helpers/wait-for';

function world() {
  const { log, lines } = captureLog('info');
  const store = new MemoryStateStore();
  const record = answeredCallRecord('call-flood', Date.now());
  const call = new Call(record, { store, clock: systemClock, log, endedRecordTtlMs: 60_000, loopbackMedia: 'from-loopback' });
  const caller = new StandInDialog({ sdp: sdp() }, { sdp: sdp() });
  const callee = new StandInDialog({ sdp: sdp() }, { sdp: sdp() });
  call.connect(caller, callee, { adopted: true });
  /** one request from the caller; resolves with the status it was answered */
  const send = (event: 'info' | 'modify', method: string, body: string): Promise<number> => new Promise((resolve) => {
    const req: InDialogRequest = { method, body, source_address: '198.51.100.10', get: (h: string) => (h === 'Content-Type' ? 'application/dtmf-relay' : undefined), has: () => false };
    caller.emit(event, req, { send: (status: number) => resolve(status) });
  });
  return { call, record, caller, callee, send, lines, store };
}

const kinds = (r: CallRecord, event: string): number => r.timeline.filter((e) => e.event === event).length;

describe('a party flooding its own call: served, but the call\'s timeline and log stay bounded', () => {
  test('2000 INFOs, 400 hold/resume re-INVITEs and 400 refused re-offers: every one answered, the other party gets every INFO and the hold changes within the re-offer rate; the timeline keeps 50 of each kind plus one note; the BYE is still recorded', { timeout: 60_000 }, async () => {
    const w = world();
    const statuses: number[] = [];
    for (let i = 0; i < 2000; i++) statuses.push(await w.send('info', 'INFO', 'Signal=1\r\nDuration=100\r\n'));
    assert.ok(statuses.every((s) => s === 200), 'every INFO answered 200');
    assert.equal(w.callee.infos, 2000, 'and relayed to the other party');
    const reinvites: number[] = [];
    for (let i = 0; i < 400; i++) {
      reinvites.push(await w.send('modify', 'INVITE', sdp(i % 2 ? 'sendrecv' : 'sendonly')));
      // the call takes one re-offer at a time: let this one's carry to the other party finish
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(reinvites.filter((s) => s === 200).length, REOFFER_BURST, 'the re-offer burst answered 200');
    assert.equal(reinvites.filter((s) => s === 503).length, 400 - REOFFER_BURST, 'the rest 503');
    await pollUntil(() => w.callee.modified === REOFFER_BURST, { timeoutMs: 10_000, what: 'every served hold change carried to the other party' });
    for (let i = 0; i < 400; i++) assert.equal(await w.send('modify', 'INVITE', sdp().replace(/198\.51\.100\.10/g, '239.1.1.1')), 488);

    assert.equal(kinds(w.record, 'info'), MAX_TIMELINE_ENTRIES_PER_KIND);
    assert.equal(kinds(w.record, 'hold') + kinds(w.record, 'resume'), REOFFER_BURST);
    assert.equal(kinds(w.record, 'reinvite-refused'), MAX_TIMELINE_ENTRIES_PER_KIND);
    assert.equal(kinds(w.record, 'sdp-refused'), MAX_TIMELINE_ENTRIES_PER_KIND);
    assert.deepEqual(w.record.timeline.filter((e) => e.event === 'timeline-limited').map((e) => e.detail).sort(), ['info', 'reinvite-refused', 'sdp-refused']);
    assert.ok(w.record.timeline.length <= 4 * (MAX_TIMELINE_ENTRIES_PER_KIND + 1) + 5, `${w.record.timeline.length} timeline entries`);
    const logged = (m: string): number => w.lines.filter((l) => l.message === m).length;
    assert.equal(logged('info'), MAX_TIMELINE_ENTRIES_PER_KIND, 'log lines bounded alike');
    assert.equal(logged('timeline-limited'), 3);

    // the call still ends as before, and its end is recorded
    w.caller.emit('destroy');
    await pollUntil(() => w.record.state === 'ended', { timeoutMs: 10_000, what: 'the call to end' });
    assert.equal(kinds(w.record, 'bye'), 1);
    assert.equal(w.record.reason, 'sip-bye');
  });
});
