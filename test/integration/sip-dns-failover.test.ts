/**
 * A trunk reached by a domain name, as real SIP trunks are: the unmodified npm drachtio-srf sends through
 * `bin/ferry sip`, which resolves the Request-URI's host with a real DNS server (dnsmasq on loopback,
 * FERRY_SIP_DNS_SERVERS) as RFC 3263 says (NAPTR, SRV, A/AAAA) and, when a target fails, tries the next
 * (RFC 3263 §4.3): a UDP target that never answers (Timer B), a TCP target that refuses the connection, a
 * target that answers 503. SIPp and small SIP stubs on distinct loopback addresses and ports are the
 * targets. T1 is 100 ms: Timer B is 6.4 s. Records live 3 s (dnsmasq --local-ttl), so a changed address is
 * used once the cached one has expired.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { connectBareSrf, g711Sdp, routesApplied } from '../helpers/srf-app';
import { Dnsmasq } from '../helpers/dnsmasq';
import { SipAnsweringPeer } from '../helpers/sip-answering-peer';
import { freePort, freePorts } from '../helpers/free-port';
import { branchOf, countReceived, describeSipp, headerOf, killAllSipp, runSipp, startSipp, tracedMessages, type SippProcess } from '../helpers/sipp';
import { expectFerrySipRefusesToStart } from '../helpers/ferry-sip-refusal';
import { pollUntil } from '../helpers/wait-for';

const T1_MS = 100;
const TIMER_B_MS = 64 * T1_MS;
const TTL_S = 3;
const D = `f${process.pid}.test`;

/** srf.request in callback form (the response listener is attached with the "sent" answer): the final status. */
function options(srf: any, uri: string): Promise<number> {
  return new Promise((resolve, reject) => {
    srf.request(uri, { method: 'OPTIONS' }, (err: Error | null, req: any) => {
      if (err) return reject(err);
      req.on('response', (res: any) => { if (res.status >= 200) resolve(res.status); });
    });
  });
}

/** An INVITE through createUAC: the final status (200: the dialog is ended at once with a BYE) and how long it took. */
async function call(srf: any, uri: string): Promise<{ status: number; ms: number }> {
  const t0 = Date.now();
  try {
    const dialog = await srf.createUAC(uri, { localSdp: g711Sdp(42_000) });
    const ms = Date.now() - t0;
    await new Promise<void>((resolve) => dialog.destroy(() => resolve()));
    return { status: 200, ms };
  } catch (err) {
    return { status: (err as { status?: number }).status ?? -1, ms: Date.now() - t0 };
  }
}

describe('ferry sip: RFC 3263 targets from DNS and failover to the next one (bin/ferry sip, drachtio-srf, dnsmasq, SIPp)', { timeout: 180_000 }, () => {
  let dns: Dnsmasq;
  let engine: SipEngineProcess;
  let srf: any;
  const peers: SipAnsweringPeer[] = [];
  const ports: Record<string, number> = {};
  let proxyTo = '';
  const proxied: number[] = [];

  before(async () => {
    const p = await freePorts(10, { protocols: ['udp', 'tcp'] });
    Object.assign(ports, { first: p[0], second: p[1], dead: p[2], tcpClosed: p[3], tcpUp: p[4], busy: p[5], after503: p[6], weighted: p[7], ttl: p[8], naptrTcp: p[9] });
    ports.naptrUdp = await freePort({ protocols: ['udp'] });
    ports.v6 = await freePort({ protocols: ['tcp'] });
    dns = await Dnsmasq.start({
      localDomains: ['test'],
      localTtl: TTL_S,
      hosts: [`127.0.0.2 ttl.${D}`],
      records: [
        `--host-record=lo.${D},127.0.0.1`,
        // two priorities, both up: the first gets it
        `--srv-host=_sip._udp.up.${D},lo.${D},${ports.first},10,0`, `--srv-host=_sip._udp.up.${D},lo.${D},${ports.second},20,0`,
        // the first never answers (nothing on its UDP port)
        `--srv-host=_sip._udp.down.${D},lo.${D},${ports.dead},10,0`, `--srv-host=_sip._udp.down.${D},lo.${D},${ports.second},20,0`,
        // TCP: the first refuses the connection
        `--srv-host=_sip._tcp.refused.${D},lo.${D},${ports.tcpClosed},10,0`, `--srv-host=_sip._tcp.refused.${D},lo.${D},${ports.tcpUp},20,0`,
        // the first answers 503
        `--srv-host=_sip._udp.busy.${D},lo.${D},${ports.busy},10,0`, `--srv-host=_sip._udp.busy.${D},lo.${D},${ports.after503},20,0`,
        // one priority, weights 1:3, on two addresses
        `--host-record=w1.${D},127.0.0.2`, `--host-record=w3.${D},127.0.0.3`,
        `--srv-host=_sip._udp.w.${D},w1.${D},${ports.weighted},10,10`, `--srv-host=_sip._udp.w.${D},w3.${D},${ports.weighted},10,30`,
        // NAPTR: TCP preferred over UDP
        `--naptr-record=n.${D},20,10,S,SIP+D2U,,_sip._udp.n.${D}`, `--naptr-record=n.${D},10,10,S,SIP+D2T,,_sip._tcp.n.${D}`,
        `--srv-host=_sip._tcp.n.${D},lo.${D},${ports.naptrTcp},10,0`, `--srv-host=_sip._udp.n.${D},lo.${D},${ports.naptrUdp},10,0`,
        // NAPTR: TCP (refused) first, then UDP
        `--naptr-record=x.${D},10,10,S,SIP+D2T,,_sip._tcp.x.${D}`, `--naptr-record=x.${D},20,10,S,SIP+D2U,,_sip._udp.x.${D}`,
        `--srv-host=_sip._tcp.x.${D},lo.${D},${ports.tcpClosed},10,0`, `--srv-host=_sip._udp.x.${D},lo.${D},${ports.second},10,0`,
        // IPv6 only
        `--host-record=v6.${D},::1`,
      ],
    });
    engine = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info', FERRY_SIP_DNS_SERVERS: dns.server, FERRY_SIP_DNS_TIMEOUT_MS: '500', FERRY_SIP_T1_MS: String(T1_MS), FERRY_SIP_T2_MS: '400', FERRY_SIP_T4_MS: '500' });
    srf = await connectBareSrf(engine.ports.control);
    // calls to ferry sip are proxied (srf.proxyRequest) to the destination the test sets
    srf.invite((req: any) => {
      srf.proxyRequest(req, [proxyTo], { remainInDialog: true }, (err: Error | null, results: { finalStatus?: number }) => { proxied.push(err ? -1 : results.finalStatus ?? 0); });
    });
    await routesApplied(srf);
  });

  after(async () => {
    try { srf?.disconnect(); } catch { /* gone */ }
    killAllSipp();
    for (const p of peers) await p.stop();
    await engine?.stop();
    await dns?.stop();
  });

  /** ferry sip's log lines about a failed target and the next one tried */
  const failovers = (): { why: string; from: string; to: string }[] => engine.stderr().split('\n')
    .filter((l) => l.includes('trying the next target')).map((l) => JSON.parse(l) as { why: string; from: string; to: string });
  async function uas(port: number, scenario = 'uas-answer.xml', transport: 'udp' | 'tcp' = 'udp'): Promise<SippProcess> {
    const s = await startSipp({ scenario, localPort: port, transport, timeoutS: 40 });
    await s.ready();
    return s;
  }
  async function peer(address: string, port: number, transport: 'udp' | 'tcp'): Promise<SipAnsweringPeer> {
    const p = await SipAnsweringPeer.start({ address, port, transport });
    peers.push(p);
    return p;
  }

  test('SRV with two priorities: the INVITE goes to the first; the second gets nothing', async () => {
    const first = await uas(ports.first!);
    const second = await uas(ports.second!);
    const r = await call(srf, `sip:bob@up.${D}`);
    assert.equal(r.status, 200);
    const done = await first.done;
    assert.equal(done.stats?.successfulCalls, 1, describeSipp(done));
    const idle = await second.stop();
    assert.equal(countReceived(idle, /^INVITE /), 0, 'the lower priority target got nothing');
    assert.deepEqual(failovers(), []);
  });

  // the two waits of real time (Timer B, 6.4 s; the record's TTL, 3 s) run at the same time: the Timer B test's
  // name (down.) and the TTL test's (ttl.) are separate records, and neither makes a failover the other counts
  describe('Timer B and a record\'s TTL, waited out at the same time', { concurrency: true }, () => {
    test('UDP: the first target never answers: after Timer B the INVITE goes to the second, the app sees only the 200', async () => {
      const second = await uas(ports.second!);
      const r = await call(srf, `sip:bob@down.${D}`);
      assert.equal(r.status, 200);
      assert.ok(r.ms >= TIMER_B_MS - 200 && r.ms < TIMER_B_MS + 3000, `answered after ${r.ms} ms (Timer B ${TIMER_B_MS} ms, then the second target)`);
      const done = await second.done;
      assert.equal(done.stats?.successfulCalls, 1, describeSipp(done));
      assert.equal(countReceived(done, /^INVITE /), 1, 'one INVITE at the second target');
      const lines = failovers();
      assert.equal(lines.length, 1, engine.stderr());
      assert.deepEqual([lines[0]!.why, lines[0]!.from, lines[0]!.to], ['timeout', `udp/127.0.0.1:${ports.dead}`, `udp/127.0.0.1:${ports.second}`]);
    });

    test(`a changed address is used once the cached one has expired (TTL ${TTL_S} s), not before`, async () => {
      const oldPeer = await peer('127.0.0.2', ports.ttl!, 'udp');
      const newPeer = await peer('127.0.0.3', ports.ttl!, 'udp');
      const uri = `sip:ttl.${D}:${ports.ttl}`;
      const t0 = Date.now();
      assert.equal(await options(srf, uri), 200);
      assert.equal(oldPeer.requests('OPTIONS').length, 1);
      await dns.setHosts([`127.0.0.3 ttl.${D}`], `ttl.${D}`, '127.0.0.3');
      assert.equal(await options(srf, uri), 200);
      assert.ok(Date.now() - t0 < TTL_S * 1000, 'this check ran within the TTL');
      assert.equal(oldPeer.requests('OPTIONS').length, 2, 'within the TTL the cached address is used although DNS has changed');
      await pollUntil(async () => (await options(srf, uri)) === 200 && newPeer.requests('OPTIONS').length > 0, { timeoutMs: TTL_S * 1000 + 5000, what: 'an OPTIONS at the new address', stepMs: 100 });
      const switched = newPeer.requests('OPTIONS')[0]!.at - t0;
      assert.ok(switched >= TTL_S * 1000 - 500, `the new address was used ${switched} ms after the first lookup (TTL ${TTL_S} s)`);
    });
  });

  test('TCP: the first target refuses the connection: the INVITE goes to the second at once', async () => {
    const up = await uas(ports.tcpUp!, 'uas-answer.xml', 'tcp');
    const before = failovers().length;
    const r = await call(srf, `sip:bob@refused.${D};transport=tcp`);
    assert.equal(r.status, 200);
    assert.ok(r.ms < 2000, `answered after ${r.ms} ms: no waiting for a timer`);
    const done = await up.done;
    assert.equal(done.stats?.successfulCalls, 1, describeSipp(done));
    const lines = failovers().slice(before);
    assert.equal(lines.length, 1, engine.stderr());
    assert.match(lines[0]!.why, /^no TCP connection: .*ECONNREFUSED/);
    assert.deepEqual([lines[0]!.from, lines[0]!.to], [`tcp/127.0.0.1:${ports.tcpClosed}`, `tcp/127.0.0.1:${ports.tcpUp}`]);
  });

  test('NAPTR lists TCP (refused) then UDP: the INVITE fails over across transports, with a UDP Via and Contact', async () => {
    const second = await uas(ports.second!);
    const r = await call(srf, `sip:bob@x.${D}`);
    assert.equal(r.status, 200);
    const done = await second.done;
    assert.equal(done.stats?.successfulCalls, 1, describeSipp(done));
    const invite = tracedMessages(done).find((m) => m.direction === 'received' && /^INVITE /.test(m.firstLine))!;
    assert.match(headerOf(invite, 'Via') ?? '', /^SIP\/2\.0\/UDP /);
    assert.doesNotMatch(headerOf(invite, 'Contact') ?? '', /transport=tcp/i, 'the Contact ferry sip wrote follows the new transport');
    assert.equal(failovers().at(-1)?.to, `udp/127.0.0.1:${ports.second}`);
  });

  test('after a failover the app\'s CANCEL goes where the INVITE went: the second target rings, gets the CANCEL, answers 487', async () => {
    const ringing = await uas(ports.tcpUp!, 'uas-ring-cancelled.xml', 'tcp');
    const before = failovers().length;
    let sent: any;
    const status = await new Promise<number>((resolve) => {
      srf.createUAC(`sip:bob@refused.${D};transport=tcp`, { localSdp: g711Sdp(42_000) }, {
        cbRequest: (_err: unknown, req: any) => { sent = req; },
        cbProvisional: (res: any) => { if (res.status === 180) sent.cancel(); },
      }).then(() => resolve(200), (err: { status?: number }) => resolve(err.status ?? -1));
    });
    assert.equal(status, 487);
    const done = await ringing.done;
    assert.equal(done.stats?.successfulCalls, 1, describeSipp(done));
    assert.equal(countReceived(done, /^CANCEL /), 1, 'the CANCEL reached the target that rang');
    assert.equal(failovers().length - before, 1, 'the INVITE failed over from the refused target first');
  });

  test('the first target answers 503: it is ACKed there and the INVITE goes to the second (new branch); the app sees only the 200', async () => {
    const busy = await uas(ports.busy!, 'proxy-uas-unavailable.xml');
    const next = await uas(ports.after503!);
    const before = failovers().length;
    const r = await call(srf, `sip:bob@busy.${D}`);
    assert.equal(r.status, 200);
    const done = await next.done;
    assert.equal(done.stats?.successfulCalls, 1, describeSipp(done));
    const refused = await busy.stop();
    assert.equal(countReceived(refused, /^INVITE /), 1);
    assert.equal(countReceived(refused, /^ACK /), 1, 'the 503 was ACKed by its transaction');
    const inviteBranch = (r: typeof done) => branchOf(tracedMessages(r).find((m) => m.direction === 'received' && /^INVITE /.test(m.firstLine))!);
    assert.notEqual(inviteBranch(refused), undefined);
    assert.notEqual(inviteBranch(done), undefined);
    assert.notEqual(inviteBranch(refused), inviteBranch(done), 'a new client transaction: a new branch');
    const lines = failovers().slice(before);
    assert.equal(lines.length, 1, engine.stderr());
    assert.deepEqual([lines[0]!.why, lines[0]!.from, lines[0]!.to], ['503', `udp/127.0.0.1:${ports.busy}`, `udp/127.0.0.1:${ports.after503}`]);
  });

  test('a proxied INVITE (srf.proxyRequest to a name) whose first target answers 503 goes to the next target; the caller gets the 200', async () => {
    const busy = await uas(ports.busy!, 'proxy-uas-unavailable.xml');
    const next = await uas(ports.after503!, 'proxy-uas-answer.xml');
    proxyTo = `sip:bob@busy.${D}`;
    const caller = await runSipp({ scenario: 'uac-call.xml', localPort: await freePort(), remote: `127.0.0.1:${engine.ports.sip}`, timeoutS: 20, talkMs: 100 });
    assert.equal(caller.stats?.successfulCalls, 1, describeSipp(caller));
    assert.equal(countReceived(caller, /^SIP\/2\.0 503/), 0, 'the 503 stayed in ferry sip');
    const done = await next.done;
    assert.equal(done.stats?.successfulCalls, 1, describeSipp(done));
    const refused = await busy.stop();
    assert.equal(countReceived(refused, /^INVITE /), 1);
    assert.equal(countReceived(refused, /^ACK /), 1, 'the 503 was ACKed by its transaction');
    await pollUntil(() => proxied.length === 1, { timeoutMs: 5000, what: 'srf.proxyRequest done' });
    assert.deepEqual(proxied, [200]);
    const line = engine.stderr().split('\n').find((l) => l.includes('proxy branch target failed: trying the next target'));
    assert.ok(line, engine.stderr());
    const logged = JSON.parse(line) as { why: string; from: string; to: string };
    assert.deepEqual([logged.why, logged.from, logged.to], ['503', `udp/127.0.0.1:${ports.busy}`, `udp/127.0.0.1:${ports.after503}`]);
  });

  test('a proxied INVITE whose first target refuses the TCP connection goes to the next target\'s connection', async () => {
    const next = await uas(ports.tcpUp!, 'proxy-uas-answer.xml', 'tcp');
    proxyTo = `sip:bob@refused.${D};transport=tcp`;
    const caller = await runSipp({ scenario: 'uac-call.xml', localPort: await freePort(), remote: `127.0.0.1:${engine.ports.sip}`, timeoutS: 20, talkMs: 100 });
    assert.equal(caller.stats?.successfulCalls, 1, describeSipp(caller));
    const done = await next.done;
    assert.equal(done.stats?.successfulCalls, 1, describeSipp(done));
    await pollUntil(() => proxied.length === 2, { timeoutMs: 5000, what: 'srf.proxyRequest done' });
    assert.deepEqual(proxied, [200, 200]);
  });

  test('weights spread requests within one priority (1:3), each request drawn anew', async () => {
    const light = await peer('127.0.0.2', ports.weighted!, 'udp');
    const heavy = await peer('127.0.0.3', ports.weighted!, 'udp');
    for (let i = 0; i < 60; i++) assert.equal(await options(srf, `sip:w.${D}`), 200);
    const [l, h] = [light.requests('OPTIONS').length, heavy.requests('OPTIONS').length];
    assert.equal(l + h, 60);
    // 60 draws with p = 30/41: fewer than 33 for the heavier one has a chance below 1 in 10 000
    assert.ok(l >= 1 && h >= 33, `light ${l}, heavy ${h}`);
  });

  test('NAPTR chooses TCP over UDP; the UDP target is there (positive control with transport=udp)', async () => {
    const tcp = await peer('127.0.0.1', ports.naptrTcp!, 'tcp');
    const udp = await peer('127.0.0.1', ports.naptrUdp!, 'udp');
    assert.equal(await options(srf, `sip:n.${D}`), 200);
    assert.equal(tcp.requests('OPTIONS').length, 1);
    assert.equal(udp.requests('OPTIONS').length, 0);
    assert.equal(await options(srf, `sip:n.${D};transport=udp`), 200);
    assert.equal(udp.requests('OPTIONS').length, 1, 'transport=udp: the UDP SRV only');
  });

  test('a name with only an AAAA record: reached over TCP on ::1', async () => {
    const v6 = await peer('::1', ports.v6!, 'tcp');
    assert.equal(await options(srf, `sip:v6.${D}:${ports.v6};transport=tcp`), 200);
    assert.equal(v6.requests('OPTIONS').length, 1);
  });

  test('a name with no records: 503 to the app at once, as before', async () => {
    const r = await call(srf, `sip:bob@none.${D}`);
    assert.equal(r.status, 503);
    assert.ok(r.ms < 2000, `${r.ms} ms`);
  });

  test('a bad FERRY_SIP_DNS_SERVERS or FERRY_SIP_DNS_TIMEOUT_MS: ferry sip refuses to start, naming it', async () => {
    await expectFerrySipRefusesToStart({ FERRY_SIP_DNS_SERVERS: 'dns.example' }, /^ferry sip: refusing to start: environment variable FERRY_SIP_DNS_SERVERS="dns\.example": "dns\.example" is not a DNS server/);
    await expectFerrySipRefusesToStart({ FERRY_SIP_DNS_SERVERS: '127.0.0.1:99999' }, /FERRY_SIP_DNS_SERVERS="127\.0\.0\.1:99999"/);
    await expectFerrySipRefusesToStart({ FERRY_SIP_DNS_TIMEOUT_MS: '0' }, /^ferry sip: refusing to start: environment variable FERRY_SIP_DNS_TIMEOUT_MS="0"/);
  });
});
