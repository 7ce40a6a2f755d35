/**
 * Real packet loss on loopback for chosen UDP ports: one iptables rule per port,
 * `-I INPUT -i lo -p udp --dport <port> -m statistic --mode random --probability <p> -j DROP`.
 * Every datagram *to* one of the ports is dropped by the kernel with probability p, so listing every
 * SIP endpoint of a call puts loss on every hop in both directions; nobody's software knows.
 *
 * Only the given ports are touched (other tests running on this machine are unaffected). Rules
 * carry a comment naming this process and are deleted by `remove()` and, as a backstop, on exit.
 * Needs root (CAP_NET_ADMIN). Used instead of `tc netem`, which this kernel lacks (sch_netem).
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export class LoopbackUdpLoss {
  private static readonly live = new Set<LoopbackUdpLoss>();
  private static exitHookInstalled = false;
  private removed = false;

  private constructor(
    readonly ports: number[],
    readonly probability: number,
    private readonly rules: string[][],
  ) {}

  /** Human-readable method, for test names and diagnostics. */
  get method(): string {
    return `iptables statistic DROP p=${this.probability} on loopback UDP to ports ${this.ports.join(', ')}`;
  }

  static async apply(ports: number[], probability: number): Promise<LoopbackUdpLoss> {
    if (process.getuid?.() !== 0) throw new Error('loopback-udp-loss: iptables rules need root (CAP_NET_ADMIN)');
    if (!(probability > 0 && probability < 1)) throw new Error(`loss probability must be in (0,1), got ${probability}`);
    LoopbackUdpLoss.installExitHook();
    const rules = ports.map((port) => [
      'INPUT', '-i', 'lo', '-p', 'udp', '--dport', String(port),
      '-m', 'statistic', '--mode', 'random', '--probability', String(probability),
      '-m', 'comment', '--comment', `ferry-test-loss-${process.pid}`,
      '-j', 'DROP',
    ]);
    const loss = new LoopbackUdpLoss(ports, probability, []);
    LoopbackUdpLoss.live.add(loss);
    try {
      for (const rule of rules) {
        await run('iptables', ['-I', ...rule]);
        loss.rules.push(rule);
      }
    } catch (err) {
      await loss.remove();
      throw new Error(`loopback-udp-loss: iptables failed: ${String((err as { stderr?: string }).stderr ?? err)}`);
    }
    return loss;
  }

  /** Packets dropped so far (iptables counters), for one port or summed over all of this instance's ports. */
  async droppedPackets(port?: number): Promise<number> {
    const { stdout } = await run('iptables', ['-L', 'INPUT', '-v', '-n', '-x']);
    let total = 0;
    for (const line of stdout.split('\n')) {
      if (!line.includes(`ferry-test-loss-${process.pid}`)) continue;
      const dport = Number(/dpt:(\d+)/.exec(line)?.[1]);
      if (!this.ports.includes(dport) || (port !== undefined && dport !== port)) continue;
      total += Number(line.trim().split(/\s+/)[0]) || 0;
    }
    return total;
  }

  /** Deletes this instance's rules. Idempotent. */
  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    LoopbackUdpLoss.live.delete(this);
    for (const rule of this.rules) await run('iptables', ['-D', ...rule]).catch(() => undefined);
  }

  private static installExitHook(): void {
    if (LoopbackUdpLoss.exitHookInstalled) return;
    LoopbackUdpLoss.exitHookInstalled = true;
    process.on('exit', () => {
      for (const loss of LoopbackUdpLoss.live) {
        for (const rule of loss.rules) {
          try {
            execFileSync('iptables', ['-D', ...rule], { stdio: 'ignore' });
          } catch {
            // already gone
          }
        }
      }
    });
  }
}
