import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { deleteNamespaceSync, execInNamespace, namespaceExists, removeStaleNamespaces } from './netns-names';

const run = promisify(execFile);

/**
 * A network namespace standing in for an IP phone's own machine, joined to the root namespace by a
 * veth pair on a private /30 (10.213.x.y): the root side holds `hostAddress` (the gateway's media
 * server reaches the phone there), the namespace side holds `phoneAddress`. Needs root (CAP_NET_ADMIN).
 *
 * Faults, as docs/lifecycle.md S7 and S10 describe them:
 *  - `pullCable()`: the namespace end goes link-down (nothing reaches the phone, no ICMP comes back);
 *    `plugCable()` brings it back.
 *  - `dropAll()`: 100% loss on both veth ends (tc netem, or the blackhole qdisc where this kernel lacks
 *    netem; the link stays up: a pure blip); `restore()` ends it.
 *
 * Names are unique per process and counter (`flc<pid>n<k>`), so parallel test runs never clash, and
 * every namespace this process created is deleted on `destroy()` and, as a backstop, on process exit.
 * Namespaces left by a crashed earlier run (their pid is gone) are removed by `NetNamespace.create()`.
 */
export class NetNamespace {
  private static counter = 0;
  private static readonly live = new Set<NetNamespace>();
  private static exitHookInstalled = false;
  private destroyed = false;

  private constructor(
    readonly name: string,
    readonly hostVeth: string,
    readonly phoneVeth: string,
    readonly hostAddress: string,
    readonly phoneAddress: string,
  ) {}

  static async create(): Promise<NetNamespace> {
    if (process.getuid?.() !== 0) throw new Error('netns: network namespaces need root (CAP_NET_ADMIN)');
    await removeStaleNamespaces(/^flc(\d+)n\d+/);
    NetNamespace.installExitHook();
    const k = NetNamespace.counter++;
    const tag = `${process.pid.toString(36)}n${k}`;
    const name = `flc${process.pid}n${k}`;
    const hostVeth = `fh${tag}`.slice(0, 15);
    const phoneVeth = `fp${tag}`.slice(0, 15);
    const { hostAddress, phoneAddress } = await NetNamespace.freeSubnet(k);
    const ns = new NetNamespace(name, hostVeth, phoneVeth, hostAddress, phoneAddress);
    NetNamespace.live.add(ns);
    try {
      await run('ip', ['netns', 'add', name]);
      await run('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', phoneVeth]);
      await run('ip', ['link', 'set', phoneVeth, 'netns', name]);
      await run('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostVeth]);
      await run('ip', ['link', 'set', hostVeth, 'up']);
      await ns.exec('ip', ['addr', 'add', `${phoneAddress}/30`, 'dev', phoneVeth]);
      await ns.exec('ip', ['link', 'set', phoneVeth, 'up']);
      await ns.exec('ip', ['link', 'set', 'lo', 'up']);
    } catch (err) {
      await ns.destroy();
      throw err;
    }
    return ns;
  }

  /** Run a command inside the namespace and wait for it. */
  async exec(command: string, args: string[]): Promise<string> {
    return execInNamespace(this.name, command, args);
  }

  /** S7: the phone's cable is pulled (its link goes down; the root end loses carrier). */
  async pullCable(): Promise<void> {
    await this.exec('ip', ['link', 'set', this.phoneVeth, 'down']);
  }

  async plugCable(): Promise<void> {
    await this.exec('ip', ['link', 'set', this.phoneVeth, 'up']);
  }

  /**
   * S10: every packet both ways is dropped while the link stays up. `tc netem loss 100%` when the kernel
   * has sch_netem; otherwise the `blackhole` qdisc (drops every packet queued on the device: the same
   * 100% loss). Returns which one was used, so tests can say it.
   */
  async dropAll(): Promise<'netem loss 100%' | 'blackhole qdisc'> {
    try {
      await run('tc', ['qdisc', 'replace', 'dev', this.hostVeth, 'root', 'netem', 'loss', '100%']);
      await this.exec('tc', ['qdisc', 'replace', 'dev', this.phoneVeth, 'root', 'netem', 'loss', '100%']);
      return 'netem loss 100%';
    } catch (err) {
      if (!String((err as { stderr?: string }).stderr ?? err).includes('qdisc kind is unknown')) throw err;
      await run('tc', ['qdisc', 'replace', 'dev', this.hostVeth, 'root', 'blackhole']);
      await this.exec('tc', ['qdisc', 'replace', 'dev', this.phoneVeth, 'root', 'blackhole']);
      return 'blackhole qdisc';
    }
  }

  async restore(): Promise<void> {
    await run('tc', ['qdisc', 'del', 'dev', this.hostVeth, 'root']).catch(() => undefined);
    await this.exec('tc', ['qdisc', 'del', 'dev', this.phoneVeth, 'root']).catch(() => undefined);
  }

  /** Delete the namespace (its veth pair goes with it). Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    NetNamespace.live.delete(this);
    await run('ip', ['netns', 'del', this.name]).catch(() => undefined);
    await run('ip', ['link', 'del', this.hostVeth]).catch(() => undefined);
  }

  /** Does the namespace still exist (tests assert cleanup)? */
  static async exists(name: string): Promise<boolean> {
    return namespaceExists(name);
  }

  private static async freeSubnet(k: number): Promise<{ hostAddress: string; phoneAddress: string }> {
    const { stdout } = await run('ip', ['-o', '-4', 'addr']);
    for (let attempt = 0; attempt < 256; attempt++) {
      const n = (process.pid * 7 + k * 13 + attempt * 31) % 16384;
      const third = n >> 6;
      const fourth = (n & 63) * 4;
      const base = `10.213.${third}.`;
      const hostAddress = `${base}${fourth + 1}`;
      const phoneAddress = `${base}${fourth + 2}`;
      if (!stdout.includes(` ${hostAddress}/`) && !stdout.includes(` ${phoneAddress}/`)) return { hostAddress, phoneAddress };
    }
    throw new Error('netns: no free 10.213.x.y/30 subnet');
  }

  private static installExitHook(): void {
    if (NetNamespace.exitHookInstalled) return;
    NetNamespace.exitHookInstalled = true;
    process.on('exit', () => {
      for (const ns of NetNamespace.live) deleteNamespaceSync(ns.name);
    });
  }
}
