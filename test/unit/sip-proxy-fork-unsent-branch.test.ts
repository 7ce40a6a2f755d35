/**
 * Simultaneous forking when one destination answers before another destination's connection is up
 * (RFC 3261 §16.7 step 10 and §16.10: the proxy cancels the client transactions it has started and
 * starts no new one once it stops searching). The ProxySession is driven with fake services: each
 * target's connection comes up when the test says so, so the order is the test's, not the machine's.
 * drachtio-server does the same: a branch not yet started is dropped, one that heard nothing yet is
 * not sent a CANCEL until it rings.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { DEFAULT_TIMERS } from '../../src/sip/transaction/timer-config';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import type { SipRequest, SipResponse } from '../../src/sip/message/sip-message';
import type { Flow } from '../../src/sip/transport/flow';
import type { ConnectedHops } from '../../src/sip/engine/next-hop-resolver';
import type { ProxyServices } from '../../src/sip/engine/proxy-dispatch';
import { ProxySession } from '../../src/sip/proxy/proxy-session';
import type { ProxyReport } from '../../src/sip/proxy/proxy-report';
import type { ProxyOptions } from '../../src/sip/proxy/proxy-options';
import type { PendingServerRequest } from '../../src/sip/engine/pending-server-requests';

const INVITE = [
  'INVITE sip:bob@ferry.test SIP/2.0',
  'Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-caller-1',
  'Max-Forwards: 70',
  'From: <sip:alice@caller.test>;tag=a1',
  'To: <sip:bob@ferry.test>',
  'Call-ID: fork-unsent-1@caller.test',
  'CSeq: 1 INVITE',
  'Contact: <sip:alice@127.0.0.1:5090>',
  'Content-Length: 0',
  '', '',
].join('\r\n');

function flow(protocol: 'udp' | 'tcp', port: number): Flow {
  return { id: `${protocol}/127.0.0.1:${port}`, protocol, reliable: protocol !== 'udp', remoteAddress: '127.0.0.1', remotePort: port,
    localAddress: '127.0.0.1', localPort: 5060, closed: false, send: () => {} };
}

function response(req: SipRequest, status: number, toTag: string): SipResponse {
  const head = [`SIP/2.0 ${status} X`, ...req.headers.getAll('Via').map((v) => `Via: ${v}`), `From: ${req.headers.get('From')}`,
    `To: ${req.headers.get('To')};tag=${toTag}`, `Call-ID: ${req.headers.get('Call-ID')}`, `CSeq: ${req.headers.get('CSeq')}`, 'Content-Length: 0', '', ''];
  return parseSipMessage(Buffer.from(head.join('\r\n'))) as SipResponse;
}

interface Sent { req: SipRequest; flow: Flow; onResponse(res: SipResponse): void }

/** A ProxySession over fake services; `connect(target)` brings that target's connection up. */
function harness(destinations: string[]) {
  const clock = new FakeClock();
  const sent: Sent[] = [];
  const upstream: number[] = [];
  const connections = new Map<string, (f: Flow) => void>();
  let ended = false;
  const noop = () => {};
  const services = {
    finishPending: noop,
    sendRequest: (req: SipRequest, f: Flow, user: { onResponse(res: SipResponse): void }) => {
      sent.push({ req, flow: f, onResponse: user.onResponse });
      return { terminated: false, abort: noop };
    },
    resolve: () => Promise.reject(new Error('resolveTargets is used')),
    resolveTargets: (target: string) => new Promise<ConnectedHops>((resolve) => {
      connections.set(target, (f) => resolve({ flow: f, next: async () => undefined, left: 0 }));
    }),
    local: { host: () => '127.0.0.1', port: () => 5060, via: (f: Flow) => `SIP/2.0/${f.protocol.toUpperCase()} 127.0.0.1:5060` },
    clock,
    timers: DEFAULT_TIMERS,
    log: { info: noop, debug: noop, warn: noop, error: noop },
  } as unknown as ProxyServices;
  const request = parseSipMessage(Buffer.from(INVITE)) as SipRequest;
  const pending = {
    request, flow: flow('udp', 5090),
    txn: { terminated: false, finalSent: false, respond: (res: SipResponse) => { upstream.push(res.status); } },
  } as unknown as PendingServerRequest;
  const report = { response: noop, finish: noop, fail: noop } as unknown as ProxyReport;
  const session = new ProxySession(services, {
    pending, request, hash: 'h', replaceUri: true, routeStamp: 's', report,
    options: { destinations, simultaneous: true, recordRoute: true, followRedirects: false, provisionalTimeoutMs: undefined, finalTimeoutMs: undefined, headers: [] } satisfies ProxyOptions,
    onEnded: () => { ended = true; },
  });
  const connect = async (target: string, f: Flow) => {
    connections.get(target)!(f);
    for (let i = 0; i < 10; i++) await Promise.resolve(); // the session's continuations
  };
  return { session, sent, upstream, connect, ended: () => ended, clock };
}

const TCP_TARGET = 'sip:127.0.0.1:7001;transport=tcp';
const UDP_TARGET = 'sip:127.0.0.1:7002';

describe('proxy forking: a branch whose connection comes up after another destination answered', () => {
  test('is never sent; the answer goes upstream and the operation ends', { timeout: 10_000 }, async () => {
    const h = harness([TCP_TARGET, UDP_TARGET]);
    h.session.start();
    await h.connect(UDP_TARGET, flow('udp', 7002));
    assert.deepEqual(h.sent.map((s) => s.flow.remotePort), [7002], 'only the UDP branch went out (control: the harness sends)');
    const udpInvite = h.sent[0]!;
    udpInvite.onResponse(response(udpInvite.req, 180, 'u1'));
    udpInvite.onResponse(response(udpInvite.req, 200, 'u1'));
    assert.deepEqual(h.upstream, [180, 200]);
    assert.equal(h.ended(), false, 'the TCP branch is still resolving');
    await h.connect(TCP_TARGET, flow('tcp', 7001));
    assert.deepEqual(h.sent.map((s) => `${s.req.method} ${s.flow.remotePort}`), ['INVITE 7002'], 'no INVITE (and no CANCEL) on the late connection');
    assert.equal(h.ended(), true, 'the operation is over');
  });

  test('control: connected before the answer, it is sent, and CANCELled once it rings', { timeout: 10_000 }, async () => {
    const h = harness([TCP_TARGET, UDP_TARGET]);
    h.session.start();
    await h.connect(TCP_TARGET, flow('tcp', 7001));
    await h.connect(UDP_TARGET, flow('udp', 7002));
    assert.deepEqual(h.sent.map((s) => `${s.req.method} ${s.flow.remotePort}`), ['INVITE 7001', 'INVITE 7002']);
    const [tcpInvite, udpInvite] = h.sent as [Sent, Sent];
    udpInvite.onResponse(response(udpInvite.req, 200, 'u1'));
    assert.deepEqual(h.sent.map((s) => s.req.method), ['INVITE', 'INVITE'], 'no CANCEL before the TCP branch heard anything (RFC 3261 §9.1)');
    tcpInvite.onResponse(response(tcpInvite.req, 180, 't1'));
    assert.deepEqual(h.sent.map((s) => `${s.req.method} ${s.flow.remotePort}`), ['INVITE 7001', 'INVITE 7002', 'CANCEL 7001'], 'its 180 got the CANCEL');
    assert.deepEqual(h.upstream, [200], 'the late 180 is not relayed');
  });
});
