import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startStack, type Stack } from '../helpers/stack';
import { pollUntil } from '../helpers/wait-for';

/**
 * What a stranger can make the gateway write to its log without a password: an INVITE with a hostile SDP
 * is refused before authentication, and a source locked out for guessing keeps being refused. Both are
 * counted in /metrics for every request, but logged one line per source per 10 s (with `suppressed`), not
 * one line per request — from any source address a UDP sender forges. The lines a fail2ban filter counts
 * (`authentication failed`) stay one per failure. Real processes, raw UDP from two loopback addresses.
 */
const FLOOD = 120;

async function socketOn(address: string): Promise<{ socket: dgram.Socket; got: string[]; nonces: string[] }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, address, () => r()));
  const got: string[] = [];
  const nonces: string[] = [];
  socket.on('message', (m) => {
    const text = m.toString('utf8');
    got.push(text.split('\r\n')[0]!);
    const nonce = /\r\nProxy-Authenticate: Digest [^\r\n]*nonce="([^"]+)"/i.exec(text)?.[1];
    if (nonce) nonces.push(nonce);
  });
  return { socket, got, nonces };
}

function invite(from: dgram.Socket, o: { sdpAddress: string; auth?: string }): string {
  const a = from.address();
  const body = `v=0\r\no=- 1 1 IN IP4 ${o.sdpAddress}\r\ns=-\r\nc=IN IP4 ${o.sdpAddress}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n`;
  return [
    'INVITE sip:1001@ferry.local SIP/2.0',
    `Via: SIP/2.0/UDP ${a.address}:${a.port};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
    'Max-Forwards: 70',
    `From: <sip:stranger@ferry.local>;tag=${randomBytes(4).toString('hex')}`,
    'To: <sip:1001@ferry.local>',
    `Call-ID: ${randomBytes(8).toString('hex')}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:stranger@${a.address}:${a.port}>`,
    ...(o.auth ? [`Proxy-Authorization: ${o.auth}`] : []),
    'Content-Type: application/sdp',
    `Content-Length: ${body.length}`,
    '',
    body,
  ].join('\r\n');
}

describe('gateway: refusals a stranger repeats at will are counted, and logged one line per source per 10 s', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  const sockets: dgram.Socket[] = [];
  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text();
    return Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.slice(name.length + 1) ?? 0);
  };
  const lines = (message: string, source?: string): string[] =>
    stack.output.filter((l) => l.startsWith('[gateway]') && l.includes(`"message":"${message}"`) && (!source || l.includes(`"${source}"`)));

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-refusal-log-'));
    const config = { domain: 'ferry.local', users: [{ user: '1001', password: 'desk-1001-secret' }], trunks: [], routes: [{ match: '.*', to: 'user' }] };
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify(config));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'), FERRY_AUTH_BACKOFF_MS: '0' } } });
  });

  after(async () => {
    for (const s of sockets) s.close();
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${FLOOD} INVITEs with a multicast SDP from one address: ${FLOOD} refusals counted, one 'sdp refused' line; another address gets its own line`, async () => {
    const flooder = await socketOn('127.0.0.3');
    const other = await socketOn('127.0.0.4');
    sockets.push(flooder.socket, other.socket);
    const metricName = 'ferry_sdp_rejected_total{problem="multicast"}';
    const before0 = await metric(metricName);
    // in rounds, each answered before the next (a burst of hundreds would overflow a socket buffer)
    for (let sent = 0; sent < FLOOD; sent += 20) {
      for (let i = 0; i < 20; i++) flooder.socket.send(invite(flooder.socket, { sdpAddress: '224.0.0.1' }), stack.sipPort, '127.0.0.1');
      await pollUntil(() => flooder.got.filter((l) => l.startsWith('SIP/2.0 488')).length >= sent + 20, { timeoutMs: 10_000, what: `488s for round ${sent / 20 + 1}` });
    }
    other.socket.send(invite(other.socket, { sdpAddress: '224.0.0.1' }), stack.sipPort, '127.0.0.1');
    await pollUntil(() => other.got.some((l) => l.startsWith('SIP/2.0 488')), { timeoutMs: 10_000, what: 'the other address\'s 488' });
    await pollUntil(async () => (await metric(metricName)) - before0 >= FLOOD + 1, { timeoutMs: 10_000, what: 'every refusal counted' });
    assert.equal(lines('sdp refused', '127.0.0.3').length, 1, `'sdp refused' lines for one address: ${lines('sdp refused', '127.0.0.3').length}`);
    assert.equal(lines('sdp refused', '127.0.0.4').length, 1, 'positive control: the other address is logged');
  });

  test(`a source locked out for guessing sends ${FLOOD} more: every one refused 403 and counted, one 'locked out' line; each failure before the lockout had its own line`, async () => {
    const guesser = await socketOn('127.0.0.6');
    sockets.push(guesser.socket);
    // a guess counts only when it answers a nonce issued to its source (docs/security.md, "Authentication"): get one
    guesser.socket.send(invite(guesser.socket, { sdpAddress: '127.0.0.6' }), stack.sipPort, '127.0.0.1');
    const nonce = await pollUntil(() => guesser.nonces[0], { timeoutMs: 10_000, what: 'a challenge' });
    const auth = `Digest username="1001", realm="ferry.local", nonce="${nonce}", uri="sip:1001@ferry.local", response="00000000000000000000000000000000"`;
    const send = (): void => guesser.socket.send(invite(guesser.socket, { sdpAddress: '127.0.0.6', auth }), stack.sipPort, '127.0.0.1');
    // the default limit: 10 failures from one source lock it out
    for (let i = 1; i <= 10; i++) {
      send();
      await pollUntil(() => guesser.got.filter((l) => /^SIP\/2\.0 (407|403)/.test(l)).length >= 1 + i, { timeoutMs: 10_000, what: `answer to guess ${i}` });
    }
    assert.ok(guesser.got.some((l) => l.startsWith('SIP/2.0 403')), 'locked out after 10 failures');
    const before0 = await metric('ferry_auth_failures_total{kind="locked-out"}');
    for (let sent = 0; sent < FLOOD; sent += 20) {
      for (let i = 0; i < 20; i++) send();
      await pollUntil(() => guesser.got.filter((l) => l.startsWith('SIP/2.0 403')).length >= 1 + sent + 20, { timeoutMs: 10_000, what: `403s for round ${sent / 20 + 1}` });
    }
    await pollUntil(async () => (await metric('ferry_auth_failures_total{kind="locked-out"}')) - before0 >= FLOOD, { timeoutMs: 10_000, what: 'every refusal counted' });
    assert.equal(lines('authentication failed', '127.0.0.6').length, 10, 'each failure its own line (what fail2ban counts)');
    assert.equal(lines('authentication refused: locked out', '127.0.0.6').length, 1, `'locked out' lines: ${lines('authentication refused: locked out', '127.0.0.6').length}`);
  });
});
