import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { warmChromium } from '../helpers/chromium';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import { vanishedTabs } from '../helpers/raw-webphone-registration';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * The gateway's webphone page in real Chromium calls a user whose newest registrations are webphone tabs
 * gone without unregistering and whose oldest is a desk phone (docs/gateway.md, "A call", step 2): the
 * call was set up for a WebRTC callee, and reaches the desk phone within the same call, its callee side
 * rebuilt as an RTP leg. Media is counted at the page and at the phone; everything is released after.
 * FERRY_RING=newest here (one registration at a time); ringing them all at once is
 * test/e2e/gateway-webphone-ring-all.test.ts.
 */
describe('a webphone calls a user with dead tabs and a desk phone', { timeout: 90_000 }, () => {
  let stack: Stack;
  let dir: string;
  let alice: GatewayWebphone;
  /** carol's desk phone, on another address than the webphones' connections */
  const desk = new SipPhone(new RtpPhone(), { user: 'carol', address: '127.0.0.2' });

  before(async () => {
    await desk.start();
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-wpregs-'));
    const file = path.join(dir, 'ferry.json');
    await writeFile(file, JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'alice', password: 'alice-regs' }, { user: 'carol', password: 'carol-regs' }],
      routes: [{ match: '.*', to: 'user' }],
    }));
    warmChromium();
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: file, FERRY_CALL_RECORD_TTL_MS: '60000', FERRY_RING: 'newest' } } });
    alice = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'alice', password: 'alice-regs' });
  });

  after(async () => {
    await alice?.close().catch(() => undefined);
    await desk.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the page reaches the desk phone at once; the dead tabs are forgotten; audio both ways; the page hangs up and everything is released', { timeout: 60_000 }, async () => {
    await desk.register({ host: '127.0.0.1', port: stack.sipPort }, 'carol-regs');
    const stale = await vanishedTabs(stack.wsPort, 'carol', 'carol-regs', ['carol1', 'carol2', 'carol3']);
    const contacts = async (): Promise<string[]> => (await getJson<{ registrations: { contact: string }[] }>(stack.httpPort, '/api/registrations?user=carol')).registrations.map((r) => r.contact);
    assert.equal((await contacts()).length, 4);
    const dialled = Date.now();
    await alice.dial('carol');
    await alice.waitCallState('connected', 10_000);
    assert.ok(Date.now() - dialled < 5000, `connected after ${Date.now() - dialled} ms`);
    await waitFor(async () => (await alice.rtpStats()).received > 50, 15_000, 100, 'RTP from the desk phone at the page');
    await waitFor(async () => (await desk.media.rtpReceivedBetween(dialled, Date.now())) > 50, 15_000, 100, 'RTP from the page at the desk phone');
    const r = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls')).calls[0]!;
    const events = r.timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(', ');
    assert.deepEqual([r.caller.kind, r.callee.kind, r.callee.uri], ['webrtc', 'rtp', desk.contact], events);
    assert.deepEqual(r.timeline.filter((e) => e.event === 'stale-registration-removed').map((e) => e.detail), [...stale].reverse(), events);
    assert.equal(r.timeline.filter((e) => e.event === 'callee-endpoint-replaced').length, 1, events);
    assert.deepEqual(await contacts(), [desk.contact]);
    assert.deepEqual(await getJson<{ pipelines: number; elements: number }>(stack.mediaPort, '/stats').then((s) => [s.pipelines, s.elements]), [1, 2]);
    const since = Date.now();
    await alice.hangup();
    await desk.waitForRequest('BYE', 5000, since);
    await desk.media.stopMedia();
    await waitFor(async () => {
      const s = await getJson<{ pipelines: number; elements: number }>(stack.mediaPort, '/stats');
      return s.pipelines === 0 && s.elements === 0;
    }, 5000, 25, 'ferry media back to no pipeline and no element');
    const done = await getJson<CallRecord>(stack.httpPort, `/api/calls/${r.id}`);
    // the page's BYE and its DTLS close race: either ends the call (as in gateway-webphones.test.ts)
    assert.ok(['sip-bye', 'dtls-close'].includes(done.reason!), done.reason);
  });
});
