import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * A caller closes the webphone tab while the called party rings: the page ends its call on `pagehide`
 * (JsSIP `ua.stop()`: CANCEL over the WebSocket), so the called party stops ringing at once instead of
 * ringing on for `FERRY_NO_ANSWER_MS` (60 s here, the default) for a caller that is gone.
 * A tab that crashes sends nothing, but its WebSocket closes with it: ferry sip ends the caller's INVITE
 * as its CANCEL would (docs/sip-engine.md, "A caller's WebSocket closes while its INVITE rings"), and the
 * gateway cancels the called party the same way.
 * Both parties are the gateway's webphone page in real Chromium.
 */
describe('webphone tab closed while the called party rings (Chromium)', { timeout: 90_000 }, () => {
  let stack: Stack;
  let dir: string;
  let alice: GatewayWebphone | undefined;
  let bob: GatewayWebphone | undefined;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-tab-closed-'));
    const config = {
      domain: 'ferry.local',
      users: [
        { user: 'alice', password: 'alice-tab-closed-secret', displayName: 'Alice' },
        { user: 'bob', password: 'bob-tab-closed-secret', displayName: 'Bob' },
        { user: 'carol', password: 'carol-tab-closed-secret', displayName: 'Carol' },
        { user: 'dave', password: 'dave-tab-closed-secret', displayName: 'Dave' },
      ],
    };
    const file = path.join(dir, 'ferry.json');
    await writeFile(file, JSON.stringify(config, null, 2));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: file, FERRY_NO_ANSWER_MS: '60000', FERRY_CALL_RECORD_TTL_MS: '60000' } } });
    alice = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'alice', password: 'alice-tab-closed-secret' });
    bob = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'bob', password: 'bob-tab-closed-secret' });
  });

  after(async () => {
    await alice?.close();
    await bob?.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /**
   * The callee stops ringing (JsSIP's 'failed': the caller cancelled), the call ends sip-cancel by the
   * caller long before the 60 s no-answer time counted from `goneAt`, and its pipeline is released.
   */
  async function calleeToldCallerGone(callee: GatewayWebphone, callId: string, goneAt: number): Promise<void> {
    await callee.waitCallState('failed', 10_000);
    const ended = await waitFor(async () => {
      const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${callId}`);
      return r.state === 'ended' ? r : undefined;
    }, 5000, 25, 'the call record ended');
    assert.equal(ended.reason, 'sip-cancel');
    assert.equal(ended.endedBy, 'caller');
    assert.ok(Date.now() - goneAt < 15_000, 'ended long before the 60 s no-answer time');
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipelines back to 0');
  }

  test('closing the calling tab cancels the call: the callee stops ringing, the call ends sip-cancel by the caller', { timeout: 60_000 }, async () => {
    await alice!.dial('bob');
    await bob!.waitCallState('ringing-in', 15_000);
    await alice!.waitCallState('ringing', 10_000);
    const ringing = await waitFor(async () => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls')).calls.find((c) => c.state === 'ringing'), 5000, 25, 'the call ringing');
    // positive control: the callee rings and goes on ringing while the caller's tab is open
    assert.equal(await bob!.callState(), 'ringing-in');

    const closedAt = Date.now();
    await alice!.page.close({ runBeforeUnload: true });
    // an incoming call the caller cancelled ends in 'failed' (JsSIP's 'failed' event, cause Canceled)
    await calleeToldCallerGone(bob!, ringing.id, closedAt);
  });

  test('the calling tab crashes (no pagehide, no CANCEL from the page): its WebSocket closes, the callee stops ringing, the call ends sip-cancel by the caller', { timeout: 60_000 }, async () => {
    const carol = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'carol', password: 'carol-tab-closed-secret' });
    const dave = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'dave', password: 'dave-tab-closed-secret' });
    try {
      const known = new Set((await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls.map((c) => c.id));
      await carol.dial('dave');
      await dave.waitCallState('ringing-in', 15_000);
      await carol.waitCallState('ringing', 10_000);
      const ringing = await waitFor(async () => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls')).calls.find((c) => !known.has(c.id) && c.state === 'ringing'), 5000, 25, 'the call ringing');
      assert.equal(await dave.callState(), 'ringing-in', 'positive control: the callee rings while the caller\'s tab lives');

      let crashed = false;
      carol.page.once('crash', () => (crashed = true));
      const crashedAt = Date.now();
      const cdp = await carol.page.context().newCDPSession(carol.page);
      // the renderer dies; the command that crashes it is never answered, so it is not waited for
      void cdp.send('Page.crash').catch(() => undefined);
      await waitFor(() => crashed, 10_000, 25, 'the tab crashed');
      await calleeToldCallerGone(dave, ringing.id, crashedAt);
    } finally {
      await carol.close().catch(() => undefined);
      await dave.close();
    }
  });
});
