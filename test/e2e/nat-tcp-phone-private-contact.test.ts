import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { NetNamespace } from '../helpers/netns';
import { startStack, type Stack } from '../helpers/stack';
import { pollUntil } from '../helpers/wait-for';
import { RawSipEndpoint, type RawSipMessage } from '../helpers/raw-sip-endpoint';

/**
 * A phone behind NAT registers over TCP from a public address with a Contact naming its private address
 * (`sip:1001@10.x.y.z:port;transport=tcp`). Calls reach it over its connection; once that connection has
 * closed, and after a restart of ferry sip, a call to the user must not make ferry sip open a connection
 * to that private address (on ferry's own network: another host's Redis, a control port). Real ferry sip,
 * media and gateway; the phone sends from this host's non-loopback public-class address; "a private host"
 * is a TCP listener on a private address of this host (the root end of a veth pair into a network
 * namespace) counting every connection it gets, at the very address and port the Contact names.
 */
const DOMAIN = 'ferry.local';
const BOB = { user: 'bob', password: 'bob-nat-tcp-secret' };
/** this host's first non-loopback, non-private IPv4 address, to register from a public source */
const PUBLIC_ADDRESS = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal && !/^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.|169\.254\.)/.test(i.address))?.address;
const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : !PUBLIC_ADDRESS ? 'this host has no public-class IPv4 address to send from' : false;




describe('NAT: a phone registered over TCP from a public address with a private Contact is never dialled at that private address', { skip: SKIP, timeout: 150_000 }, () => {
  let stack: Stack;
  let ns: NetNamespace;
  let dir: string;
  let privateHost: net.Server;
  let privatePort = 0;
  /** connections "the private host" got */
  let privateConnections = 0;
  const endpoints: RawSipEndpoint[] = [];
  let contact = '';

  before(async () => {
    ns = await NetNamespace.create();
    privateHost = net.createServer((s) => {
      privateConnections++;
      s.on('error', () => {});
      // reads what it is sent and answers nothing, as a service that does not speak SIP
      s.resume();
      setTimeout(() => s.destroy(), 2000).unref();
    });
    privateHost.maxConnections = 16;
    await new Promise<void>((resolve, reject) => {
      privateHost.once('error', reject);
      privateHost.listen(0, ns.hostAddress, () => resolve());
    });
    privatePort = (privateHost.address() as net.AddressInfo).port;
    contact = `sip:1001@${ns.hostAddress}:${privatePort};transport=tcp`;
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-nat-tcp-'));
    const config = {
      domain: DOMAIN,
      users: [
        { user: '1001', password: 'desk-1001-nat-tcp-secret' },
        { user: 'bob', password: 'bob-nat-tcp-secret' },
      ],
      trunks: [],
      routes: [{ match: '.*', to: 'user' }],
    };
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify(config, null, 2));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'), FERRY_NO_ANSWER_MS: '5000' } } });
  });

  after(async () => {
    for (const e of endpoints) e.close();
    await stack?.stop();
    await new Promise<void>((r) => (privateHost ? privateHost.close(() => r()) : r()));
    await ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const phone = async (): Promise<RawSipEndpoint> => {
    const p = await RawSipEndpoint.tcp(PUBLIC_ADDRESS!, stack.sipPort, { domain: DOMAIN, busy: true });
    endpoints.push(p);
    assert.match(await p.register('1001', 'desk-1001-nat-tcp-secret', contact), /^SIP\/2\.0 200/);
    return p;
  };
  const caller = async (): Promise<RawSipEndpoint> => {
    const c = await RawSipEndpoint.udp('127.0.0.1', stack.sipPort, { domain: DOMAIN, busy: true });
    endpoints.push(c);
    return c;
  };
  const isInvite = (m: RawSipMessage): boolean => m.start.startsWith('INVITE ');
  /** ferry sip logged that the INVITE found no connection at the phone's public source address and port (where it went instead of the Contact) */
  const triedPublicSource = (p: RawSipEndpoint): boolean =>
    stack.output.some((l) => l.includes('request target unreachable') && l.includes(`no TCP connection to ${PUBLIC_ADDRESS}:${p.port()}`));

  test('N1: while the phone\'s TCP connection is up, its call goes over that connection (positive control)', async () => {
    const p = await phone();
    const status = await (await caller()).call('1001', BOB);
    assert.equal(p.received.filter(isInvite).length, 1, 'the phone gets the INVITE over its connection');
    assert.equal(p.received.find(isInvite)!.start, `INVITE ${contact} SIP/2.0`, 'the Request-URI stays the Contact');
    assert.match(status, /^SIP\/2\.0 486/, 'the phone\'s answer reaches the caller');
    assert.equal(privateConnections, 0, 'nothing connected to the private address');
    p.close();
    await pollUntil(() => p.closed(), { timeoutMs: 5000, what: 'the phone\'s connection closed' });
  });

  test('N2: after the phone\'s connection closed, a call to it fails without a connection to the private address', async () => {
    const p = await phone();
    p.close();
    await pollUntil(() => p.closed(), { timeoutMs: 5000, what: 'the phone\'s connection closed' });
    const was = privateConnections;
    const status = await (await caller()).call('1001', BOB);
    assert.match(status, /^SIP\/2\.0 480/, `the caller gets a clean failure: ${status}`);
    assert.equal(privateConnections - was, 0, `ferry sip connected to the private Contact address ${ns.hostAddress}:${privatePort}`);
    await pollUntil(() => triedPublicSource(p), { timeoutMs: 5000, what: 'ferry sip logging that it found no connection at the phone\'s public source' });
  });

  test('N3: after a restart of ferry sip (it remembers no binding), a call to it fails without a connection to the private address', async () => {
    const p = await phone();
    p.close();
    await pollUntil(() => p.closed(), { timeoutMs: 5000, what: 'the phone\'s connection closed' });
    await stack.restart('sip');
    // the gateway is back on ferry sip once a REGISTER is answered again (bob's own UDP registration)
    const c = await caller();
    await pollUntil(async () => {
      try {
        return /^SIP\/2\.0 200/.test(await c.register('bob', 'bob-nat-tcp-secret', `sip:bob@127.0.0.1:${c.port()}`));
      } catch {
        return false;
      }
    }, { timeoutMs: 30_000, stepMs: 500, what: 'the gateway answering REGISTERs through the restarted ferry sip' });
    const was = privateConnections;
    const status = await c.call('1001', BOB);
    assert.match(status, /^SIP\/2\.0 480/, `the caller gets a clean failure: ${status}`);
    assert.equal(privateConnections - was, 0, `ferry sip connected to the private Contact address ${ns.hostAddress}:${privatePort}`);
    await pollUntil(() => triedPublicSource(p), { timeoutMs: 5000, what: 'ferry sip logging that it found no connection at the phone\'s public source' });
  });
});
