/**
 * Garbage a stranger sends ferry sip over UDP — unparseable datagrams, malformed requests it answers 400,
 * requests the validator refuses — is counted, but logged one line per kind and source address per 10 s,
 * not one line per datagram: at the default level (info) a flood of them would otherwise write a log line
 * per packet, from any source address a UDP sender cares to forge. `bin/ferry sip` with its metrics port,
 * real UDP sockets from two loopback addresses.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { pollUntil } from '../helpers/wait-for';

const FLOOD = 300;

function readyInfo(e: SipEngineProcess): Record<string, number> {
  const m = /ferry sip ready (\{[^\n]*\})/.exec(e.stdout());
  assert.ok(m, 'ready line');
  return JSON.parse(m[1]!) as Record<string, number>;
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.slice(name.length).trim()) : 0;
}

function lines(e: SipEngineProcess, message: string): Record<string, unknown>[] {
  return e.stderr().split('\n').filter((l) => l.includes(`"message":"${message}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function socketOn(address: string): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, address, () => r()));
  return s;
}

const malformed = (): string => [
  'OPTIONS sip:probe@127.0.0.1 SIP/2.0', `Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
  'From: <sip:a@b>;tag=1', 'To: <sip:c@d>', `Call-ID: ${randomBytes(6).toString('hex')}`, 'CSeq: x OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
const refused = (): string => [
  'OPTIONS sip:probe@127.0.0.1 SIP/3.0', `Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
  'Max-Forwards: 70', 'From: <sip:a@b>;tag=1', 'To: <sip:c@d>', `Call-ID: ${randomBytes(6).toString('hex')}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');

describe('ferry sip: a flood of garbage is counted, not logged line by line', { timeout: 60_000 }, () => {
  let engine: SipEngineProcess | undefined;
  const sockets: dgram.Socket[] = [];
  after(async () => {
    sockets.forEach((s) => s.close());
    await engine?.stop();
  });

  test(`${FLOOD} unparseable datagrams, ${FLOOD} malformed and ${FLOOD} refused requests from one address: one line of each kind; a second address gets its own line`, async () => {
    engine = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info', FERRY_LOG_FORMAT: 'json', FERRY_SIP_METRICS_PORT: '0' });
    const metricsPort = readyInfo(engine).metrics!;
    const flooder = await socketOn('127.0.0.3');
    const other = await socketOn('127.0.0.4');
    sockets.push(flooder, other);
    let answered = 0;
    flooder.on('message', () => answered++);
    const port = engine.ports.sip;
    // in rounds, each counted before the next: a burst of hundreds at once would overflow the socket's buffer
    const ROUND = 25;
    for (let sent = 0; sent < FLOOD; sent += ROUND) {
      for (let i = 0; i < ROUND; i++) {
        flooder.send(Buffer.concat([Buffer.from('\x16\x03'), randomBytes(200)]), port, '127.0.0.1');
        flooder.send(malformed(), port, '127.0.0.1');
        flooder.send(refused(), port, '127.0.0.1');
      }
      await pollUntil(async () => (await metric(metricsPort, 'ferry_sip_malformed_messages_total{outcome="dropped"}')) >= sent + ROUND
        && (await metric(metricsPort, 'ferry_sip_malformed_messages_total{outcome="answered"}')) >= sent + ROUND
        && answered >= 2 * (sent + ROUND), { timeoutMs: 10_000, what: `round ${sent / ROUND + 1}: every datagram counted and answered` });
    }
    other.send(Buffer.from('\x16\x03garbage'), port, '127.0.0.1');
    await pollUntil(async () => (await metric(metricsPort, 'ferry_sip_malformed_messages_total{outcome="dropped"}')) >= FLOOD + 1, { timeoutMs: 10_000, what: 'the other address\'s datagram counted' });

    const dropped = lines(engine, 'dropped malformed SIP message');
    assert.equal(dropped.filter((l) => String(l.from).includes('127.0.0.3')).length, 1, `unparseable datagrams from one address: ${dropped.length} lines`);
    assert.equal(dropped.filter((l) => String(l.from).includes('127.0.0.4')).length, 1, 'positive control: the other address has its own line');
    assert.equal(lines(engine, 'answered malformed request with 400').length, 1, 'malformed requests from one address');
    assert.equal(lines(engine, 'refused request').length, 1, 'refused requests from one address');
  });
});
