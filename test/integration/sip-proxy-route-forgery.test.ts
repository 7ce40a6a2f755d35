/**
 * ferry sip relays an in-dialog request that matches no dialog of its own when its top Route is ferry sip's
 * Record-Route (a call an app proxied with `remainInDialog`: docs/sip-proxy.md). That Route used to be
 * recognised by a fixed mark (`;ferry-rr`) and ferry's address, both of which anyone can write: a stranger
 * sent `BYE sip:x@<any address>` with a made-up To tag and `Route: <sip:ferry;lr;ferry-rr>`, and ferry sip
 * sent it on to that address from its own — to a trunk that trusts ferry's address, or to a service on
 * ferry's own host — with no app asked and no rate applied. Now our Record-Route carries a stamp of the
 * call's Call-ID under a key only this ferry sip holds, and only a Route with the stamp of the request's own
 * Call-ID is relayed; anything else is an unknown dialog (481).
 *
 * Real parts: ferry sip in process, the npm drachtio-srf proxying with `remainInDialog`, raw
 * UDP sockets for the caller, the callee (also the target the forgeries aim at) and the stranger. Positive
 * control: the proxied call's own ACK and BYE, sent after the forgeries, reach the callee through ferry sip.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectBareSrf, routesApplied } from '../helpers/srf-app';
import { sipToken, TEST_SDP } from '../helpers/sip-udp-phone';
import { pollUntil } from '../helpers/wait-for';

interface Received {
  text: string;
  first: string;
  header(name: string): string | undefined;
}

interface RawSocket {
  socket: dgram.Socket;
  address: string;
  port: number;
  got: Received[];
  send(text: string): void;
}

function parse(text: string): Received {
  const head = text.split('\r\n\r\n')[0]!.split('\r\n');
  return {
    text,
    first: head[0] ?? '',
    header(name: string) {
      const l = head.find((x) => x.toLowerCase().startsWith(`${name.toLowerCase()}:`));
      return l ? l.slice(l.indexOf(':') + 1).trim() : undefined;
    },
  };
}

describe('ferry sip relays only the in-dialog requests of calls it record-routed itself', { timeout: 60_000 }, () => {
  let engine: RunningSipEngine;
  let srf: any;
  const sockets: dgram.Socket[] = [];
  let calleePort = 0;

  async function raw(address: string, onMessage?: (m: Received, s: RawSocket) => void): Promise<RawSocket> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, address, () => resolve()));
    sockets.push(socket);
    const r: RawSocket = {
      socket, address, port: socket.address().port, got: [],
      send: (text) => socket.send(Buffer.from(text, 'utf8'), engine.ports.sip, '127.0.0.1'),
    };
    socket.on('message', (d) => {
      const m = parse(d.toString('utf8'));
      r.got.push(m);
      onMessage?.(m, r);
    });
    return r;
  }

  before(async () => {
    // no restart hold: a request for an unknown dialog is answered 481 at once
    engine = await startSipEngine({ host: '127.0.0.1', restartHoldMs: 0 });
    srf = await connectBareSrf(engine.ports.control);
    srf.invite((req: any) => {
      srf.proxyRequest(req, `sip:callee@127.0.0.1:${calleePort}`, { remainInDialog: true }).catch(() => { /* the test's asserts say what failed */ });
    });
    await routesApplied(srf);
  });
  after(async () => {
    sockets.forEach((s) => s.close());
    try { srf.disconnect(); } catch { /* gone */ }
    await engine.close();
  });

  test('a forged Route (the bare mark, or a real call\'s Route on another Call-ID) gets 481 and nothing reaches its target; the proxied call\'s own ACK and BYE do', async () => {
    // the callee answers the proxied INVITE (Record-Route copied) and every BYE
    const callee = await raw('127.0.0.1', (m, s) => {
      const answer = (status: string, extra: string[], toTag: string): void => {
        const vias = m.text.split('\r\n\r\n')[0]!.split('\r\n').filter((l) => /^via:/i.test(l));
        const to = m.header('To')!;
        s.socket.send(Buffer.from([`SIP/2.0 ${status}`, ...vias, `From: ${m.header('From')}`, `To: ${/;tag=/.test(to) ? to : `${to};tag=${toTag}`}`,
          `Call-ID: ${m.header('Call-ID')}`, `CSeq: ${m.header('CSeq')}`, ...extra, `Content-Length: 0`, '', ''].join('\r\n')),
        engine.ports.sip, '127.0.0.1');
      };
      if (/^INVITE /.test(m.first)) {
        answer('200 OK', [`Record-Route: ${m.header('Record-Route')}`, `Contact: <sip:callee@127.0.0.1:${s.port}>`], 'callee1');
      } else if (/^BYE /.test(m.first)) answer('200 OK', [], 'x');
    });
    calleePort = callee.port;
    const caller = await raw('127.0.0.1');
    const stranger = await raw('127.0.0.1');

    // the proxied call
    const callId = sipToken();
    caller.send([`INVITE sip:callee@127.0.0.1:${engine.ports.sip} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${sipToken()};rport`,
      'Max-Forwards: 70', 'From: <sip:caller@127.0.0.1>;tag=caller1', `To: <sip:callee@127.0.0.1>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
      `Contact: <sip:caller@127.0.0.1:${caller.port}>`, 'Content-Type: application/sdp', `Content-Length: ${TEST_SDP.length}`, '', TEST_SDP].join('\r\n'));
    const ok = await pollUntil(() => caller.got.find((m) => /^SIP\/2\.0 200/.test(m.first)), { timeoutMs: 10_000, what: 'the 200 of the proxied INVITE' });
    const route = ok.header('Record-Route')!;
    assert.match(route, /;lr;ferry-rr=[A-Za-z0-9_-]{22}>$/, `ferry sip's Record-Route carries a stamp: ${route}`);
    const calleeTo = ok.header('To')!;

    const inDialog = (from: RawSocket, method: string, opts: { uri: string; route: string; callId: string; cseq: number; to: string }): string =>
      [`${method} ${opts.uri} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${from.port};branch=z9hG4bK${sipToken()};rport`, 'Max-Forwards: 70',
        'From: <sip:caller@127.0.0.1>;tag=caller1', `To: ${opts.to}`, `Call-ID: ${opts.callId}`, `CSeq: ${opts.cseq} ${method}`,
        `Route: ${opts.route}`, 'Content-Length: 0', '', ''].join('\r\n');
    const target = `sip:victim@127.0.0.1:${callee.port}`;
    const forgeries = [
      { what: 'the bare mark', route: `<sip:127.0.0.1:${engine.ports.sip};lr;ferry-rr>`, callId: sipToken() },
      { what: 'a made-up stamp', route: `<sip:127.0.0.1:${engine.ports.sip};lr;ferry-rr=AAAAAAAAAAAAAAAAAAAAAA>`, callId: sipToken() },
      { what: 'the real call\'s Route on another Call-ID', route, callId: sipToken() },
    ];
    for (const f of forgeries) {
      // an ACK has no answer: it goes first, so that were it relayed it would reach the callee before the positive control
      stranger.send(inDialog(stranger, 'ACK', { uri: target, route: f.route, callId: f.callId, cseq: 1, to: '<sip:victim@127.0.0.1>;tag=guess' }));
      stranger.send(inDialog(stranger, 'BYE', { uri: target, route: f.route, callId: f.callId, cseq: 2, to: '<sip:victim@127.0.0.1>;tag=guess' }));
      const answer = await pollUntil(() => stranger.got.find((m) => m.header('Call-ID') === f.callId), { timeoutMs: 5_000, what: `an answer to the BYE with ${f.what}` });
      assert.match(answer.first, /^SIP\/2\.0 481 /, `${f.what}: ${answer.first}`);
    }

    // positive control: the call's own ACK and BYE, with the Route ferry sip gave it, pass through ferry sip to the callee
    const calleeUri = `sip:callee@127.0.0.1:${callee.port}`;
    caller.send(inDialog(caller, 'ACK', { uri: calleeUri, route, callId, cseq: 1, to: calleeTo }));
    caller.send(inDialog(caller, 'BYE', { uri: calleeUri, route, callId, cseq: 2, to: calleeTo }));
    await pollUntil(() => caller.got.find((m) => /^SIP\/2\.0 200/.test(m.first) && / BYE$/.test(m.header('CSeq') ?? '')), { timeoutMs: 5_000, what: 'the 200 to the call\'s BYE, relayed back' });
    const atCallee = callee.got.filter((m) => /^(ACK|BYE) /.test(m.first));
    assert.deepEqual(atCallee.map((m) => `${m.first.split(' ')[0]} ${m.header('Call-ID') === callId ? 'the call' : 'a forgery'}`), ['ACK the call', 'BYE the call'],
      'only the call\'s own ACK and BYE reached the callee');
    assert.match(atCallee[1]!.header('Via') ?? '', /branch=z9hG4bKfp/, 'the BYE came through ferry sip');
    assert.equal(stranger.got.filter((m) => !/^SIP\/2\.0 481 /.test(m.first)).length, 0, 'the stranger got nothing but its 481s');
  });
});
