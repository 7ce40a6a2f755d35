import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import { answerOver, tabContact, vanish, webphoneRegisters } from '../helpers/raw-webphone-registration';
import { RawSipEndpoint } from '../helpers/raw-sip-endpoint';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Bindings that live on a connection (docs/gateway.md, "Bindings that live on a connection"): a webphone
 * tab's, and a TCP phone's behind NAT whose Contact names its private address, go once their connection
 * has gone — never rung again — while a UDP phone's, a TCP phone's ferry can connect back to, and an
 * open tab's stay. Real ferry sip, ferry media and two gateways on the shared Redis (a private key
 * prefix); the tabs are raw SIP-over-WebSocket clients registering as the webphone page does (a
 * `.invalid` Contact) and answering OPTIONS `200` and INVITEs `486`; a tab that "reconnects" after a
 * restart of ferry sip registers again over a new WebSocket, the same Contact, as JsSIP does.
 */
/** Stand-in for the browser API: JsSIP only checks that it exists before taking an incoming INVITE (W3 never answers one) */
class FakeRTCPeerConnectionNeverConstructed {
  constructor() {
    throw new Error('W3 never answers a call, so no RTCPeerConnection may be created');
  }
}
const g = globalThis as unknown as Record<string, unknown>;
g.WebSocket ??= WebSocket;
g.window ??= { RTCPeerConnection: FakeRTCPeerConnectionNeverConstructed };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const JsSIP = require('jssip') as typeof import('jssip');

/** JsSIP's invite server transaction keeps its timers H and I after the ACK of a non-2xx: cleared once the UA stopped */
function clearJsSipTimers(ua: unknown): void {
  const ist = (ua as { _transactions?: { ist?: Record<string, { H?: NodeJS.Timeout; I?: NodeJS.Timeout }> } })._transactions?.ist ?? {};
  for (const tr of Object.values(ist)) {
    clearTimeout(tr.H);
    clearTimeout(tr.I);
  }
}

const DOMAIN = 'ferry.local';
const ALICE = { user: 'alice', password: 'alice-flow-secret' };
/** this host's first non-loopback, non-private IPv4 address, to register the TCP phone from a public source */
const PUBLIC_ADDRESS = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal && !/^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.|169\.254\.)/.test(i.address))?.address;

/** a registered tab that answers as a live webphone page: OPTIONS 200, INVITE 486; counts the INVITEs it gets */
interface Tab {
  name: string;
  contact: string;
  ws: WebSocket;
  invites: string[];
}

function live(ws: WebSocket, name: string, invites: string[] = []): Tab {
  ws.on('message', (d) => {
    const text = d.toString();
    if (text.startsWith('OPTIONS ')) answerOver(ws, text, '200 OK');
    if (text.startsWith('INVITE ')) {
      invites.push(text);
      answerOver(ws, text, '486 Busy Here');
    }
  });
  return { name, contact: tabContact(name), ws, invites };
}

describe('bindings that live on a connection go with it (webphone tabs, TCP behind NAT), two gateways on Redis', { timeout: 150_000 }, () => {
  let stack: Stack;
  let dir: string;
  const endpoints: RawSipEndpoint[] = [];
  const sockets: WebSocket[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ferry-flow-bound-'));
    const file = path.join(dir, 'ferry.json');
    await writeFile(file, JSON.stringify({
      domain: DOMAIN,
      users: [
        ALICE,
        { user: 'carol', password: 'carol-flow-secret' },
        { user: 'dave', password: 'dave-flow-secret' },
        { user: '1001', password: 'desk-1001-flow-secret' },
        { user: '1002', password: 'desk-1002-flow-secret' },
        { user: 'erin', password: 'erin-flow-secret' },
      ],
      routes: [{ match: '.*', to: 'user' }],
    }));
    stack = await startStack({
      redisUrl: 'redis://127.0.0.1:6379',
      secondGateway: true,
      partEnv: {
        gateway: {
          FERRY_SIP_CONFIG: file,
          FERRY_NO_ANSWER_MS: '5000',
          FERRY_CALL_RECORD_TTL_MS: '60000',
          FERRY_FLOW_RECONNECT_GRACE_MS: '6000',
          FERRY_FLOW_CHECK_MS: '1500',
        },
      },
    });
  });

  after(async () => {
    for (const e of endpoints) e.close();
    for (const ws of sockets) await vanish(ws).catch(() => undefined);
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const tab = async (user: string, password: string, name: string): Promise<Tab> => {
    const ws = await webphoneRegisters(stack.wsPort, user, password, DOMAIN, name);
    sockets.push(ws);
    return live(ws, name);
  };
  const contacts = async (user: string): Promise<string[]> =>
    (await getJson<{ registrations: { contact: string }[] }>(stack.httpPort, `/api/registrations?user=${user}`)).registrations.map((r) => r.contact).sort();
  /** the gateways' log lines saying a binding was removed because its connection is gone */
  const flowClosedLines = (contact: string): string[] =>
    stack.output.filter((l) => l.includes('registration removed: flow closed') && l.includes('"reason":"flow-closed"') && l.includes(contact));
  /** ferry sip's log lines answering a request to `contact` itself (no connection, 410/503) */
  const unreachableLines = (contact: string): string[] => stack.output.filter((l) => l.includes('request target unreachable') && l.includes(contact));
  const caller = async (): Promise<RawSipEndpoint> => {
    const c = await RawSipEndpoint.udp('127.0.0.1', stack.sipPort, { domain: DOMAIN, busy: true });
    endpoints.push(c);
    return c;
  };
  const lastCallTo = async (user: string): Promise<CallRecord> =>
    waitFor(async () => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls.filter((c) => c.callee.party === user).sort((a, b) => b.createdAt - a.createdAt)[0], 5000, 25, `the call to ${user}`);

  test('W1: a tab closed while ferry runs is removed (flow-closed); the next call does not try it, the open tab rings', { timeout: 40_000 }, async () => {
    const open = await tab('carol', 'carol-flow-secret', 'wopen1');
    const closed = await tab('carol', 'carol-flow-secret', 'wclosed1');
    assert.deepEqual(await contacts('carol'), [closed.contact, open.contact].sort());
    await vanish(closed.ws);
    await waitFor(async () => !(await contacts('carol')).includes(closed.contact), 15_000, 100, 'the closed tab\'s binding gone from /api/registrations');
    // the store answers before the removing gateway's log line has come through its pipe
    await waitFor(() => flowClosedLines(closed.contact).length > 0, 5000, 25, 'one flow-closed removal, logged once (two gateways)');
    assert.equal(flowClosedLines(closed.contact).length, 1, 'one flow-closed removal, logged once (two gateways)');
    assert.deepEqual(await contacts('carol'), [open.contact], 'the open tab is kept');
    const unreachableBefore = unreachableLines(closed.contact).length;
    const status = await (await caller()).call('carol', ALICE);
    assert.match(status, /^SIP\/2\.0 486/, 'the open tab\'s answer reaches the caller');
    assert.equal(open.invites.length, 1, 'the open tab rang (positive control)');
    const r = await lastCallTo('carol');
    const timeline = r.timeline.map((e) => `${e.event}(${e.detail ?? ''})`).join(', ');
    assert.ok(!timeline.includes(closed.contact), `the call tried the closed tab: ${timeline}`);
    assert.equal(unreachableLines(closed.contact).length, unreachableBefore, 'no INVITE to the closed tab reached ferry sip (no 410/503 for it)');
    await vanish(open.ws);
    await waitFor(async () => (await contacts('carol')).length === 0, 15_000, 100, 'the second tab gone once closed too');
  });

  test('W2: ferry sip restarted with two tabs, one closed: the open one registers again and rings, the closed one is gone; a UDP phone stays and rings', { timeout: 60_000 }, async () => {
    const phone = await RawSipEndpoint.udp('127.0.0.1', stack.sipPort, { domain: DOMAIN, busy: true });
    endpoints.push(phone);
    const phoneContact = `sip:dave@127.0.0.1:${phone.port()}`;
    assert.match(await phone.register('dave', 'dave-flow-secret', phoneContact), /^SIP\/2\.0 200/);
    const staying = await tab('carol', 'carol-flow-secret', 'wagain2');
    const gone = await tab('carol', 'carol-flow-secret', 'wgone2');
    assert.deepEqual(await contacts('carol'), [gone.contact, staying.contact].sort());
    const invites: string[] = [];
    // the staying tab reconnects as JsSIP does: 1.5 s after its WebSocket closed, then every 0.5 s until registered
    let reRegistered = 0;
    let reconnecting = true;
    staying.ws.once('close', () => {
      void (async () => {
        await new Promise((r) => setTimeout(r, 1500));
        while (reconnecting) {
          try {
            const ws = await webphoneRegisters(stack.wsPort, 'carol', 'carol-flow-secret', DOMAIN, staying.name);
            sockets.push(ws);
            live(ws, staying.name, invites);
            reRegistered = Date.now();
            return;
          } catch {
            await new Promise((r) => setTimeout(r, 500));
          }
        }
      })();
    });
    const restarted = Date.now();
    await stack.restart('sip');
    await waitFor(() => reRegistered > 0, 30_000, 100, 'the open tab registered again through the restarted ferry sip');
    reconnecting = false;
    // the closed tab goes once the reconnection grace is over; the open one, registered again within it, stays
    await waitFor(async () => !(await contacts('carol')).includes(gone.contact), 30_000, 100, 'the closed tab\'s binding gone');
    assert.deepEqual(flowClosedLines(staying.contact), [], 'the tab that registered again was never removed');
    // the store answers before the removing gateway's log line has come through its pipe
    await waitFor(() => flowClosedLines(gone.contact).length > 0, 5000, 25, 'the closed tab removed once, as flow-closed');
    assert.equal(flowClosedLines(gone.contact).length, 1, 'the closed tab removed once, as flow-closed');
    assert.ok(Date.now() - restarted >= 6000, 'not before the reconnection grace');
    assert.deepEqual(await contacts('carol'), [staying.contact]);
    assert.ok((await contacts('dave')).includes(phoneContact), 'the UDP phone\'s binding kept');
    const c = await caller();
    assert.match(await c.call('carol', ALICE), /^SIP\/2\.0 486/, 'the tab that registered again answers');
    assert.equal(invites.length, 1, 'the reconnected tab rang');
    const timeline = (await lastCallTo('carol')).timeline.map((e) => `${e.event}(${e.detail ?? ''})`).join(', ');
    assert.ok(!timeline.includes(gone.contact), `the call tried the closed tab: ${timeline}`);
    const before = phone.received.filter((m) => m.start.startsWith('INVITE ')).length;
    assert.match(await c.call('dave', ALICE), /^SIP\/2\.0 486/, 'the UDP phone answers (positive control)');
    assert.equal(phone.received.filter((m) => m.start.startsWith('INVITE ')).length - before, 1, 'the UDP phone rang');
  });

  test('N4: a TCP phone behind NAT (private Contact) whose connection closed is removed; a TCP phone ferry can connect back to is kept', { timeout: 40_000, skip: PUBLIC_ADDRESS ? false : 'this host has no public-class IPv4 address to send from' }, async () => {
    const natContact = 'sip:1001@10.99.0.7:5060;transport=tcp';
    const nat = await RawSipEndpoint.tcp(PUBLIC_ADDRESS!, stack.sipPort, { domain: DOMAIN, busy: true });
    endpoints.push(nat);
    assert.match(await nat.register('1001', 'desk-1001-flow-secret', natContact), /^SIP\/2\.0 200/);
    const direct = await RawSipEndpoint.tcp('127.0.0.1', stack.sipPort, { domain: DOMAIN, busy: true });
    endpoints.push(direct);
    const directContact = `sip:1002@127.0.0.1:${direct.port()};transport=tcp`;
    assert.match(await direct.register('1002', 'desk-1002-flow-secret', directContact), /^SIP\/2\.0 200/);
    // positive control: while its connection is up the NAT phone is called over it
    assert.match(await (await caller()).call('1001', ALICE), /^SIP\/2\.0 486/);
    assert.equal(nat.received.filter((m) => m.start.startsWith('INVITE ')).length, 1);
    nat.close();
    direct.close();
    await waitFor(() => nat.closed() && direct.closed(), 5000, 25, 'both phones\' connections closed');
    await waitFor(async () => !(await contacts('1001')).includes(natContact), 20_000, 100, 'the NAT phone\'s binding gone');
    // the store answers before the removing gateway's log line has come through its pipe
    await waitFor(() => flowClosedLines(natContact).length > 0, 5000, 25, 'removed once, as flow-closed');
    assert.equal(flowClosedLines(natContact).length, 1, 'removed once, as flow-closed');
    // a later check has run (a tab closed after it is removed too), and the reachable TCP phone is still bound
    const later = await tab('carol', 'carol-flow-secret', 'wlater4');
    await vanish(later.ws);
    await waitFor(async () => !(await contacts('carol')).includes(later.contact), 15_000, 100, 'a tab closed after it removed by a later check');
    assert.deepEqual(await contacts('1002'), [directContact], 'a TCP binding ferry can connect back to stays until it expires');
    assert.match(await (await caller()).call('1001', ALICE), /^SIP\/2\.0 480/, 'the NAT phone\'s user has no registration left');
  });

  test('W3: ferry sip and both gateways restarted (as npm start restarts): a real JsSIP user agent reconnects, registers again, is kept and rings; a tab that did not come back is removed', { timeout: 60_000 }, async () => {
    const gone = await tab('erin', 'erin-flow-secret', 'wgone3');
    const ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(`ws://127.0.0.1:${stack.wsPort}`)],
      uri: `sip:erin@${DOMAIN}`,
      password: 'erin-flow-secret',
      register: true,
      register_expires: 600,
      session_timers: false,
      // bounded so that it is back well within the gateways' reconnection grace (6 s here; JsSIP's own up to 30 s, the default grace 45 s)
      connection_recovery_min_interval: 1,
      connection_recovery_max_interval: 2,
    });
    let registered = 0;
    const incoming: string[] = [];
    ua.on('registered', () => registered++);
    ua.on('newRTCSession', ((e: { originator: string; request: { call_id: string }; session: { terminate(o: object): void } }) => {
      if (e.originator !== 'remote') return;
      incoming.push(e.request.call_id);
      e.session.terminate({ status_code: 486 });
    }) as never);
    ua.start();
    try {
      await waitFor(() => registered === 1, 10_000, 25, 'JsSIP registered');
      const uaContact = (await contacts('erin')).find((c) => c !== gone.contact)!;
      assert.ok(uaContact, 'JsSIP\'s binding listed');
      // positive control before the restart: a call rings the user agent (and the tab, which answers 486 too)
      assert.match(await (await caller()).call('erin', ALICE), /^SIP\/2\.0 486/);
      assert.equal(incoming.length, 1, 'JsSIP rang before the restart');
      // the restart closes both WebSockets: the tab never comes back, JsSIP does by itself
      const restarted = Date.now();
      await stack.restart('sip');
      await stack.restart('gateway');
      await stack.restart('gateway2');
      await waitFor(() => registered >= 2, 30_000, 100, 'JsSIP registered again through the restarted ferry sip');
      await waitFor(async () => !(await contacts('erin')).includes(gone.contact), 30_000, 100, 'the tab\'s binding gone');
      assert.ok(Date.now() - restarted >= 6000, 'not before the reconnection grace');
      assert.deepEqual(flowClosedLines(uaContact), [], 'JsSIP\'s binding was never removed');
      // the store answers before the removing gateway's log line has come through its pipe
      await waitFor(() => flowClosedLines(gone.contact).length > 0, 5000, 25, 'the tab removed once, as flow-closed');
      assert.equal(flowClosedLines(gone.contact).length, 1, 'the tab removed once, as flow-closed');
      assert.deepEqual(await contacts('erin'), [uaContact]);
      assert.match(await (await caller()).call('erin', ALICE), /^SIP\/2\.0 486/, 'JsSIP\'s answer reaches the caller');
      assert.equal(incoming.length, 2, 'JsSIP rang after the restart');
    } finally {
      ua.stop();
      clearJsSipTimers(ua);
    }
  });
});
