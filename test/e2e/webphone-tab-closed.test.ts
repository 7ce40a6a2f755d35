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
    await bob!.waitCallState('failed', 10_000);
    const ended = await waitFor(async () => {
      const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${ringing.id}`);
      return r.state === 'ended' ? r : undefined;
    }, 5000, 25, 'the call record ended');
    assert.equal(ended.reason, 'sip-cancel');
    assert.equal(ended.endedBy, 'caller');
    assert.ok(Date.now() - closedAt < 15_000, 'ended long before the 60 s no-answer time');
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipelines back to 0');
  });
});
