import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * A JsSIP-originated blind transfer (docs/transfer.md): the gateway's webphone page in real Chromium
 * answers a call from a scripted IP phone, then transfers it with its Transfer button (JsSIP
 * `session.refer()` over the WebSocket); JsSIP reads the NOTIFY 200 as accepted, the browser's leg is
 * hung up, and the phone and the transfer target exchange packets.
 */
describe('blind transfer from the JsSIP webphone (Chromium)', { timeout: 90_000 }, () => {
  let stack: Stack;
  let dir: string;
  let webphone: GatewayWebphone | undefined;
  const a = new SipPhone(new RtpPhone(), { user: 'a' });
  const c = new SipPhone(new RtpPhone(), { user: 'c' });
  const password = 'alice-transfer-webphone-secret';

  before(async () => {
    const ports = { a: await a.start(), c: await c.start() };
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-transfer-webphone-'));
    const trunk = (name: keyof typeof ports): Record<string, unknown> => ({ name, address: `127.0.0.1:${ports[name]}`, transport: 'udp', acceptFrom: [`127.0.0.1:${ports[name]}`] });
    const config = {
      domain: 'ferry.local',
      users: [{ user: 'alice', password, displayName: 'Alice' }],
      trunks: [trunk('a'), trunk('c')],
      routes: [{ match: '8(\\d+)', to: 'trunk:c', rewrite: '$1' }, { match: '.*', to: 'user' }],
    };
    const file = path.join(dir, 'ferry.json');
    await writeFile(file, JSON.stringify(config, null, 2));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: file, FERRY_CALL_RECORD_TTL_MS: '60000' } } });
    webphone = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'alice', password });
  });

  after(async () => {
    await webphone?.close();
    await a.close();
    await c.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const hears = (phone: SipPhone, since: number, what: string): Promise<unknown> =>
    waitFor(async () => (await phone.media.rtpReceivedBetween(since, Date.now())) > 20, 10_000, 25, what);

  test('the webphone transfers the phone to 8100: accepted, its leg released, phone and target talk', { timeout: 60_000 }, async () => {
    const wp = webphone!;
    const since = Date.now();
    const calling = a.call('sip:alice@ferry.local', { host: '127.0.0.1', port: stack.sipPort });
    await wp.waitCallState('ringing-in', 15_000);
    await wp.answer();
    await calling;
    await wp.waitCallState('connected', 10_000);
    await hears(a, since, 'RTP from the browser at the phone');
    const id = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls')).calls[0]!.id;

    await wp.page.fill('#transfer-target', '8100');
    await wp.page.click('#transfer');
    await wp.page.waitForFunction(() => (window as unknown as { ferryTransferred?: string }).ferryTransferred === '8100', undefined, { timeout: 10_000 });
    await wp.waitCallState('ended', 10_000);
    const switched = Date.now();
    await hears(c, switched, 'RTP from the phone at the target');
    await hears(a, switched, 'RTP from the target at the phone');
    const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);
    assert.deepEqual(r.transfers?.map((t) => [t.kind, t.by, t.left, t.stayed, t.joined]), [['blind', 'callee', 'alice', 'a', 'c']]);
    assert.equal(r.callee.kind, 'rtp', 'the browser leg became the phone leg of the target');

    const hangupAt = Date.now();
    await a.hangup();
    await a.media.stopMedia();
    await c.waitForRequest('BYE', 5000, hangupAt);
    await c.media.stopMedia();
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipelines back to 0');
  });
});
