/**
 * Who can reach ferry sip's metrics port (docs/sip-engine.md "Metrics"), seen from another machine: a network
 * namespace joined to this one by a veth pair (test/helpers/netns.ts) stands in for it. `bin/ferry sip` runs here.
 * With FERRY_SIP_METRICS_HOST set to this side's veth address the other machine scrapes it, and ferry sip said
 * so once at start (level warn, naming the address); with the default (127.0.0.1) the same other machine's
 * connection to this side's address at the metrics port is refused, while a client on this host is served.
 * Needs root (ip netns).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NetNamespace } from '../helpers/netns';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { freePort } from '../helpers/free-port';

/** GET http://<host>:<port>/metrics from inside the namespace: the status and body, or the connect error's code. */
async function scrapeFrom(ns: NetNamespace, host: string, port: number): Promise<{ status?: number; body?: string; error?: string }> {
  const script = `
    const http = require('node:http');
    const req = http.get({ host: ${JSON.stringify(host)}, port: ${port}, path: '/metrics', agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, body })));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err) => process.stdout.write(JSON.stringify({ error: err.code || err.message })));
  `;
  return JSON.parse(await ns.exec(process.execPath, ['-e', script])) as { status?: number; body?: string; error?: string };
}

function readyMetricsPort(e: SipEngineProcess): number {
  const m = /ferry sip ready (\{[^\n]*\})/.exec(e.stdout());
  const port = m ? (JSON.parse(m[1]!) as { metrics?: number }).metrics : undefined;
  assert.ok(port, `the ready line names the metrics port: ${e.stdout()}`);
  return port;
}

describe('ferry sip metrics port seen from another machine (a network namespace)', { timeout: 90_000 }, () => {
  let ns: NetNamespace;
  const engines: SipEngineProcess[] = [];
  before(async () => {
    ns = await NetNamespace.create();
  });
  after(async () => {
    await Promise.all(engines.map((e) => e.stop()));
    await ns?.destroy();
  });

  test('FERRY_SIP_METRICS_HOST on an address other machines reach: they scrape it, and ferry sip logged it once as exposed', { timeout: 30_000 }, async () => {
    const e = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info', FERRY_LOG_FORMAT: 'json', FERRY_SIP_METRICS_PORT: '0', FERRY_SIP_METRICS_HOST: ns.hostAddress });
    engines.push(e);
    const port = readyMetricsPort(e);
    const got = await scrapeFrom(ns, ns.hostAddress, port);
    assert.equal(got.status, 200, JSON.stringify(got));
    assert.match(got.body!, /^ferry_sip_connections_open 0$/m);
    const exposed = e.stderr().split('\n').filter((l) => l.includes('reachable from other hosts'));
    assert.equal(exposed.length, 1, e.stderr());
    const line = JSON.parse(exposed[0]!) as Record<string, unknown>;
    assert.equal(line.level, 'warn');
    assert.equal(line.host, ns.hostAddress);
    assert.equal(line.port, port);
  });

  test('the default host: the other machine\'s connection to this host\'s address at the metrics port is refused; this host is served', { timeout: 30_000 }, async () => {
    const port = await freePort({ protocols: ['tcp'] });
    const e = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info', FERRY_LOG_FORMAT: 'json', FERRY_SIP_METRICS_PORT: String(port) });
    engines.push(e);
    assert.equal(readyMetricsPort(e), port);
    // positive control: the other machine reaches this host's address (the exposed engine above listens there)
    const exposedPort = readyMetricsPort(engines[0]!);
    assert.equal((await scrapeFrom(ns, ns.hostAddress, exposedPort)).status, 200);
    assert.deepEqual(await scrapeFrom(ns, ns.hostAddress, port), { error: 'ECONNREFUSED' });
    const local = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(local.status, 200);
    await local.text();
    assert.doesNotMatch(e.stderr(), /reachable from other hosts/);
  });
});
