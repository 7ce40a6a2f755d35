/**
 * An INVITE with a To tag that matches no dialog is answered 481 — once. Over UDP its source can be forged,
 * in-dialog requests are not held to the per-source rate of new requests (a call must not lose its BYE), and
 * Timer G used to retransmit the 481 until Timer H: one forged datagram made ferry sip send a 100 and eleven
 * 481s to whoever it named (a reflection of about twelve times). The 481 now goes out once, like a
 * challenge (RFC 3261 §26.3.2.4); a retransmitted INVITE still gets it. Positive control, the clock of
 * this test: a new INVITE that no app routes is answered 503, which Timer G still retransmits.
 * `bin/ferry sip` with short timers, real UDP sockets.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { pollUntil } from '../helpers/wait-for';

async function socketOn(address: string): Promise<{ socket: dgram.Socket; got: string[] }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, address, () => r()));
  const got: string[] = [];
  socket.on('message', (m) => got.push(m.toString('utf8').split('\r\n')[0]!));
  return { socket, got };
}

function invite(from: dgram.Socket, toTag: string | undefined, branch: string, callId: string): string {
  const a = from.address();
  return [`INVITE sip:1001@127.0.0.1 SIP/2.0`, `Via: SIP/2.0/UDP ${a.address}:${a.port};branch=z9hG4bK${branch};rport`, 'Max-Forwards: 70',
    'From: <sip:x@example.org>;tag=f1', `To: <sip:1001@127.0.0.1>${toTag ? `;tag=${toTag}` : ''}`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
    `Contact: <sip:x@${a.address}:${a.port}>`, 'Content-Length: 0', '', ''].join('\r\n');
}

describe('ferry sip: a 481 to an INVITE for an unknown dialog is sent once', { timeout: 60_000 }, () => {
  let engine: SipEngineProcess | undefined;
  const sockets: dgram.Socket[] = [];
  after(async () => {
    sockets.forEach((s) => s.close());
    await engine?.stop();
  });

  test('one forged in-dialog INVITE: 100 and one 481 (again for its retransmission); a 503 to a new INVITE meanwhile is retransmitted', async () => {
    engine = await spawnSipEngine({ FERRY_SIP_T1_MS: '40', FERRY_SIP_T2_MS: '400', FERRY_SIP_UNROUTED_HOLD_MS: '0', FERRY_SIP_RESTART_HOLD_MS: '0' });
    const reflector = await socketOn('127.0.0.3');
    const control = await socketOn('127.0.0.4');
    sockets.push(reflector.socket, control.socket);
    const branch = randomBytes(6).toString('hex');
    const callId = randomBytes(6).toString('hex');
    reflector.socket.send(invite(reflector.socket, 'guessed', branch, callId), engine.ports.sip, '127.0.0.1');
    control.socket.send(invite(control.socket, undefined, randomBytes(6).toString('hex'), randomBytes(6).toString('hex')), engine.ports.sip, '127.0.0.1');
    const is = (got: string[], status: number): number => got.filter((l) => l.startsWith(`SIP/2.0 ${status} `)).length;
    // Timer G at 40, 80, 160, 320, 400... ms: by the 503's fourth retransmission a 481 under Timer G would have had as many
    await pollUntil(() => is(control.got, 503) >= 5, { timeoutMs: 10_000, what: 'the 503 retransmitted by Timer G (the positive control)' });
    await pollUntil(() => is(reflector.got, 481) >= 1, { timeoutMs: 1000, what: 'the 481' });
    assert.equal(is(reflector.got, 100), 1);
    assert.equal(is(reflector.got, 481), 1, `481s for one INVITE: ${is(reflector.got, 481)}`);
    // the INVITE retransmitted (its sender lost the answer): answered again from the transaction
    reflector.socket.send(invite(reflector.socket, 'guessed', branch, callId), engine.ports.sip, '127.0.0.1');
    await pollUntil(() => is(reflector.got, 481) === 2, { timeoutMs: 5000, what: 'the 481 again for the retransmitted INVITE' });
  });
});
