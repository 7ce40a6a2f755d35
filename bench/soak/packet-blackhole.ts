import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Every UDP packet to or from some loopback ports silently dropped by the kernel (iptables DROP in
 * INPUT on `lo`, by destination and by source port): what the server sees when a phone's network
 * blips or its cable is pulled — nothing arrives, nothing sent reaches it, no ICMP comes back. Only
 * the given ports are touched. Rules carry a comment naming this process; `remove()` deletes them,
 * and so does process exit, as a backstop. Needs root (CAP_NET_ADMIN).
 */
export class PacketBlackhole {
  private static readonly live = new Set<PacketBlackhole>();
  private static exitHookInstalled = false;
  private readonly rules: string[][] = [];
  private removed = false;

  private constructor(readonly ports: number[]) {}

  static async apply(ports: number[]): Promise<PacketBlackhole> {
    PacketBlackhole.installExitHook();
    const hole = new PacketBlackhole(ports);
    PacketBlackhole.live.add(hole);
    try {
      for (const port of ports) {
        for (const dir of ['--dport', '--sport']) {
          const rule = ['INPUT', '-i', 'lo', '-p', 'udp', dir, String(port), '-m', 'comment', '--comment', `ferry-soak-${process.pid}`, '-j', 'DROP'];
          await run('iptables', ['-w', '5', '-I', ...rule]);
          hole.rules.push(rule);
        }
      }
    } catch (err) {
      await hole.remove();
      throw new Error(`packet-blackhole: iptables failed: ${String((err as { stderr?: string }).stderr ?? err)}`);
    }
    return hole;
  }

  /** Packets dropped by this blackhole so far (iptables counters). */
  async dropped(): Promise<number> {
    const { stdout } = await run('iptables', ['-w', '5', '-L', 'INPUT', '-v', '-n', '-x']);
    let total = 0;
    for (const line of stdout.split('\n')) {
      if (!line.includes(`ferry-soak-${process.pid}`)) continue;
      const port = Number(/[ds]pt:(\d+)/.exec(line)?.[1]);
      if (this.ports.includes(port)) total += Number(line.trim().split(/\s+/)[0]) || 0;
    }
    return total;
  }

  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    PacketBlackhole.live.delete(this);
    for (const rule of this.rules) await run('iptables', ['-w', '5', '-D', ...rule]).catch(() => undefined);
  }

  private static installExitHook(): void {
    if (PacketBlackhole.exitHookInstalled) return;
    PacketBlackhole.exitHookInstalled = true;
    process.on('exit', () => {
      for (const hole of PacketBlackhole.live) {
        for (const rule of hole.rules) {
          try {
            execFileSync('iptables', ['-w', '5', '-D', ...rule], { stdio: 'ignore' });
          } catch {
            // already gone
          }
        }
      }
    });
  }
}
