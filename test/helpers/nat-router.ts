import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { deleteNamespaceSync, execInNamespace, namespaceExists, removeStaleNamespaces } from './netns-names';

const run = promisify(execFile);

/** One NAT mapping of the router: a private port of the home address and the public port it goes out on. */
export interface NatMapping {
  privatePort: number;
  publicPort: number;
  /** the outside address and port the home address talks to */
  peer: string;
  peerPort: number;
  /** packets from the home network through this mapping, and back in through it (conntrack accounting) */
  packetsOut: number;
  packetsIn: number;
}

/**
 * An office or home behind a masquerading router, for tests of ferry on a real network. Two network
 * namespaces joined to the root namespace (where ferry runs) by veth pairs:
 *
 *   root: `ferryAddress`/30  ── veth ──  router: `routerOutside`/30 (MASQUERADE, ip_forward=1)
 *                                        router: `routerInside`/24  ── veth ──  home: `homeAddress`/24 (default route via the router)
 *
 * The outside /30 is taken from the documentation ranges 198.51.100.0/24 and 203.0.113.0/24 (addresses
 * ferry treats as public: src/common/nat-addresses.ts lists only private, shared and link-local ones), on
 * veths made here only; the home network is a private 192.168.x.0/24 that exists only inside the two
 * namespaces. The router is a real NAPT: `iptables -t nat -A POSTROUTING -o <outside> -j MASQUERADE
 * --random-fully` (every new mapping gets a random source port, so a binding the router forgot comes back
 * on another port), and a stateful firewall as home routers have: nothing from outside is forwarded in
 * unless it belongs to a mapping (conntrack ESTABLISHED/RELATED). The root namespace gets one route, to the
 * home network via the router on the veth made here, so a packet sent to a private address of the home
 * network ends at the router's firewall (counted: `inboundDropped()`) instead of leaving the machine.
 *
 * Names are unique per process and counter (`fnh<pid>n<k>`, `fnr<pid>n<k>`); destroy() deletes both
 * namespaces (their veths, addresses, routes and iptables rules go with them), a process exit hook does so
 * as a backstop, and create() removes the namespaces of an earlier run whose process is gone.
 */
export class NatRouter {
  private static counter = 0;
  private static readonly live = new Set<NatRouter>();
  private static exitHookInstalled = false;
  private destroyed = false;
  private wrapperDir: string | undefined;

  private constructor(
    /** the namespace of the phone or browser (the home network) */
    readonly home: string,
    /** the router's namespace */
    readonly router: string,
    /** root end of the outside veth (holds ferryAddress) */
    readonly outsideRootVeth: string,
    /** router end of the outside veth (holds routerOutside: the NAT's public address) */
    readonly outsideVeth: string,
    readonly insideVeth: string,
    readonly homeVeth: string,
    /** ferry's public address (root namespace) */
    readonly ferryAddress: string,
    /** the router's public address: what ferry sees as the source of everything from the home network */
    readonly routerOutside: string,
    readonly routerInside: string,
    /** the phone's or browser's private address */
    readonly homeAddress: string,
  ) {}

  static async create(): Promise<NatRouter> {
    if (process.getuid?.() !== 0) throw new Error('nat-router: network namespaces and iptables need root (CAP_NET_ADMIN)');
    await removeStaleNamespaces(/^fn[hr](\d+)n\d+/);
    NatRouter.installExitHook();
    const k = NatRouter.counter++;
    const tag = `${process.pid.toString(36)}n${k}`;
    const { ferryAddress, routerOutside, homeNet } = await NatRouter.freeAddresses(k);
    const r = new NatRouter(
      `fnh${process.pid}n${k}`, `fnr${process.pid}n${k}`,
      `fno${tag}`.slice(0, 15), `fnw${tag}`.slice(0, 15), `fni${tag}`.slice(0, 15), `fnp${tag}`.slice(0, 15),
      ferryAddress, routerOutside, `${homeNet}.1`, `${homeNet}.2`,
    );
    NatRouter.live.add(r);
    try {
      await run('ip', ['netns', 'add', r.router]);
      await run('ip', ['netns', 'add', r.home]);
      // outside: root <-> router
      await run('ip', ['link', 'add', r.outsideRootVeth, 'type', 'veth', 'peer', 'name', r.outsideVeth]);
      await run('ip', ['link', 'set', r.outsideVeth, 'netns', r.router]);
      await run('ip', ['addr', 'add', `${ferryAddress}/30`, 'dev', r.outsideRootVeth]);
      await run('ip', ['link', 'set', r.outsideRootVeth, 'up']);
      await r.inRouter('ip', ['addr', 'add', `${routerOutside}/30`, 'dev', r.outsideVeth]);
      await r.inRouter('ip', ['link', 'set', r.outsideVeth, 'up']);
      await r.inRouter('ip', ['link', 'set', 'lo', 'up']);
      // inside: router <-> home
      await r.inRouter('ip', ['link', 'add', r.insideVeth, 'type', 'veth', 'peer', 'name', r.homeVeth]);
      await r.inRouter('ip', ['link', 'set', r.homeVeth, 'netns', r.home]);
      await r.inRouter('ip', ['addr', 'add', `${r.routerInside}/24`, 'dev', r.insideVeth]);
      await r.inRouter('ip', ['link', 'set', r.insideVeth, 'up']);
      await r.inHome('ip', ['addr', 'add', `${r.homeAddress}/24`, 'dev', r.homeVeth]);
      await r.inHome('ip', ['link', 'set', r.homeVeth, 'up']);
      await r.inHome('ip', ['link', 'set', 'lo', 'up']);
      await r.inHome('ip', ['route', 'add', 'default', 'via', r.routerInside]);
      // the router: forwarding, NAPT with random ports, a stateful firewall
      await r.inRouter('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      await r.inRouter('sysctl', ['-qw', 'net.netfilter.nf_conntrack_acct=1']);
      await r.inRouter('iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-o', r.outsideVeth, '-j', 'MASQUERADE', '--random-fully']);
      await r.inRouter('iptables', ['-A', 'FORWARD', '-i', r.outsideVeth, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT']);
      await r.inRouter('iptables', ['-A', 'FORWARD', '-i', r.outsideVeth, '-j', 'DROP']);
      // root: the home network is behind the router (a packet to a private home address stops at its firewall)
      await run('ip', ['route', 'add', `${homeNet}.0/24`, 'via', routerOutside, 'dev', r.outsideRootVeth]);
    } catch (err) {
      await r.destroy();
      throw err;
    }
    return r;
  }

  /** Run a command in the home namespace and wait for it. */
  async inHome(command: string, args: string[]): Promise<string> {
    return execInNamespace(this.home, command, args);
  }

  /** Run a command in the router's namespace and wait for it. */
  async inRouter(command: string, args: string[]): Promise<string> {
    return execInNamespace(this.router, command, args);
  }

  /** Start a long-running program in the home namespace. */
  spawnInHome(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.home, command, ...args], options);
  }

  /**
   * An executable file that runs `program` inside the home namespace with the arguments it was given
   * (for playwright-core's executablePath: Chromium then lives in the home network). Removed on destroy().
   */
  homeWrapper(program: string): string {
    this.wrapperDir ??= mkdtempSync(path.join(tmpdir(), 'ferry-nat-wrapper-'));
    const file = path.join(this.wrapperDir, path.basename(program));
    writeFileSync(file, `#!/bin/sh\nexec ip netns exec ${this.home} ${program} "$@"\n`);
    chmodSync(file, 0o755);
    return file;
  }

  /**
   * The router's NAT mappings (conntrack entries) of `protocol` from the home address: the public port
   * each private source port is mapped to now.
   */
  async mappings(protocol: 'udp' | 'tcp' = 'udp'): Promise<NatMapping[]> {
    const out = await this.inRouter('conntrack', ['-L', '-p', protocol, '-s', this.homeAddress]).catch((err: { stdout?: string }) => err.stdout ?? '');
    const found: NatMapping[] = [];
    for (const line of out.split('\n')) {
      // original: src=home dst=peer sport=a dport=b [packets=n bytes=n] ... reply: src=peer dst=routerOutside sport=b dport=<public> [packets=n ...]
      const m = /src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) (?:packets=(\d+) )?.*?src=\S+ dst=(\S+) sport=\d+ dport=(\d+) (?:packets=(\d+))?/.exec(line);
      if (!m || m[1] !== this.homeAddress || m[6] !== this.routerOutside) continue;
      found.push({ privatePort: Number(m[3]), peer: m[2]!, peerPort: Number(m[4]), publicPort: Number(m[7]), packetsOut: Number(m[5] ?? 0), packetsIn: Number(m[8] ?? 0) });
    }
    return found;
  }

  /** The router forgets every NAT mapping (`conntrack -F`), as a home router does after a reboot or an idle timeout. */
  async forgetMappings(): Promise<void> {
    await this.inRouter('conntrack', ['-F']).catch((err: { stderr?: string }) => {
      // conntrack -F prints a summary on stderr and exits 0; anything else is a failure
      throw new Error(`conntrack -F in ${this.router}: ${err.stderr ?? String(err)}`);
    });
  }

  /** Packets from outside that the router's firewall dropped (they belonged to no mapping). */
  async inboundDropped(): Promise<number> {
    const out = await this.inRouter('iptables', ['-L', 'FORWARD', '-v', '-n', '-x']);
    const line = out.split('\n').find((l) => /\bDROP\b/.test(l) && l.includes(this.outsideVeth));
    return line ? Number(line.trim().split(/\s+/)[0]) : 0;
  }

  /** Delete both namespaces (veths, addresses, routes and iptables rules go with them). Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    NatRouter.live.delete(this);
    await run('ip', ['netns', 'del', this.home]).catch(() => undefined);
    await run('ip', ['netns', 'del', this.router]).catch(() => undefined);
    await run('ip', ['link', 'del', this.outsideRootVeth]).catch(() => undefined);
    if (this.wrapperDir) rmSync(this.wrapperDir, { recursive: true, force: true });
  }

  /** Does a namespace of this name exist (tests assert cleanup)? */
  static async exists(name: string): Promise<boolean> {
    return namespaceExists(name);
  }

  /** A /30 of the documentation ranges no interface of the root namespace uses, and a home /24 no route of it names. */
  private static async freeAddresses(k: number): Promise<{ ferryAddress: string; routerOutside: string; homeNet: string }> {
    const addrs = (await run('ip', ['-o', '-4', 'addr'])).stdout;
    const routes = (await run('ip', ['-4', 'route'])).stdout;
    const ranges = ['198.51.100', '203.0.113'];
    for (let attempt = 0; attempt < 128; attempt++) {
      const n = (process.pid * 7 + k * 13 + attempt * 31) % 128;
      const base = `${ranges[n >> 6]}.`;
      const fourth = (n & 63) * 4;
      const ferryAddress = `${base}${fourth + 1}`;
      const routerOutside = `${base}${fourth + 2}`;
      if (addrs.includes(` ${ferryAddress}/`) || addrs.includes(` ${routerOutside}/`)) continue;
      if (routes.includes(`${base}${fourth}/30`)) continue;
      for (let h = 0; h < 200; h++) {
        const homeNet = `192.168.${(n + h * 37 + k) % 200 + 20}`;
        if (!routes.includes(`${homeNet}.`) && !addrs.includes(` ${homeNet}.`)) return { ferryAddress, routerOutside, homeNet };
      }
    }
    throw new Error('nat-router: no free outside /30 or home /24');
  }

  private static installExitHook(): void {
    if (NatRouter.exitHookInstalled) return;
    NatRouter.exitHookInstalled = true;
    process.on('exit', () => {
      for (const r of NatRouter.live) {
        deleteNamespaceSync(r.home);
        deleteNamespaceSync(r.router);
        if (r.wrapperDir) rmSync(r.wrapperDir, { recursive: true, force: true });
      }
    });
  }
}
