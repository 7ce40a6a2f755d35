/**
 * A real DNS server for tests: `dnsmasq` on 127.0.0.1 and a free port (UDP and TCP), answering only from
 * the records given on its command line (--srv-host, --naptr-record, --host-record...) and from an
 * addn-hosts file the test may rewrite and reload (`setHosts`: SIGHUP); everything else under the test's
 * domains is NXDOMAIN. Nothing is forwarded anywhere. `stop()` ends only this process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DnsClient } from '../../src/sip/dns/dns-client';
import type { RecordType } from '../../src/sip/dns/dns-message';
import { freePort } from './free-port';
import { pollUntil } from './wait-for';

export interface DnsmasqOptions {
  /** record options as dnsmasq takes them, e.g. `--srv-host=_sip._udp.a.test,h1.a.test,5070,10,0` */
  records: string[];
  /** domains answered locally (NXDOMAIN for unknown names), e.g. ['test'] */
  localDomains: string[];
  /** TTL of host and addn-hosts records (dnsmasq --local-ttl; default 0 = not cacheable) */
  localTtl?: number;
  /** initial /etc/hosts-style lines of the reloadable file */
  hosts?: string[];
}

export class Dnsmasq {
  private readonly dir: string;
  private readonly hostsFile: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  output = '';

  private constructor(readonly port: number, private readonly options: DnsmasqOptions) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-test-dnsmasq-'));
    this.hostsFile = path.join(this.dir, 'hosts');
    writeFileSync(this.hostsFile, (options.hosts ?? []).map((l) => `${l}\n`).join(''));
  }

  /** `host:port` for FERRY_SIP_DNS_SERVERS */
  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(options: DnsmasqOptions): Promise<Dnsmasq> {
    for (let attempt = 0; ; attempt++) {
      const d = new Dnsmasq(await freePort(), options);
      try {
        await d.launch();
        return d;
      } catch (err) {
        await d.stop();
        if (attempt >= 3) throw err;
      }
    }
  }

  private async launch(): Promise<void> {
    const args = [
      '--keep-in-foreground', '--no-daemon', '--conf-file=/dev/null', '--pid-file=', '--user=root',
      `--port=${this.port}`, '--listen-address=127.0.0.1', '--bind-interfaces',
      '--no-resolv', '--no-hosts', '--no-poll', `--addn-hosts=${this.hostsFile}`,
      `--local-ttl=${this.options.localTtl ?? 0}`, '--cache-size=0',
      ...this.options.localDomains.map((d) => `--local=/${d}/`),
      ...this.options.records,
    ];
    const child = spawn('dnsmasq', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stdout!.on('data', (d: Buffer) => { this.output += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { this.output += d.toString(); });
    child.once('error', (err) => { this.output += `spawn error: ${err.message}\n`; });
    const client = new DnsClient([{ address: '127.0.0.1', port: this.port }], 200, 1);
    await pollUntil(async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`dnsmasq exited: ${this.output}`);
      await client.query(`ready-${this.port}.${this.options.localDomains[0] ?? 'test'}`, 'A');
      return true;
    }, { timeoutMs: 10_000, what: `dnsmasq answering on 127.0.0.1:${this.port}` });
  }

  /** Asks it directly (what ferry sip would get). */
  query(name: string, type: RecordType): ReturnType<DnsClient['query']> {
    return new DnsClient([{ address: '127.0.0.1', port: this.port }], 1000, 1).query(name, type);
  }

  /** Rewrites the reloadable hosts file and has dnsmasq read it again (SIGHUP); resolves once it answers `name` with `address`. */
  async setHosts(lines: string[], name: string, address: string): Promise<void> {
    writeFileSync(this.hostsFile, lines.map((l) => `${l}\n`).join(''));
    this.child?.kill('SIGHUP');
    await pollUntil(async () => (await this.query(name, address.includes(':') ? 'AAAA' : 'A')).records.some((r) => 'address' in r && r.address === address),
      { timeoutMs: 10_000, what: `dnsmasq answering ${name} with ${address} after the reload` });
  }

  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
