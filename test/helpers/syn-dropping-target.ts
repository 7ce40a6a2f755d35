import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { NetNamespace } from './netns';
import { pollUntil } from './wait-for';

/**
 * SIP-over-TCP peers on another machine whose SYNs are dropped: a dead trunk on a real network. They
 * live in a network namespace of their own (joined by a veth pair, netns.ts) and listen on
 * `address:ports[i]`; an iptables rule inside the namespace per port drops every SYN to it, so a
 * connection attempt gets no answer at all (no RST, no ICMP) until `answerSyns(port)` removes the rule:
 * an attempt still retransmitting its SYN then comes up. Each rule counts the SYNs it dropped, per
 * port: a live attempt retransmits (after 1 s, then 2 s, 4 s...), a given-up one does not.
 * `refusedPort` has no listener and no rule (a connection to it is refused at once).
 * Every connection and every INVITE is recorded with its port; an INVITE is answered `486 Busy Here`
 * on the connection it came over. Needs root; namespaces are machine-wide: tests run in a serial lane.
 */
export class SynDroppingTarget {
  readonly connections: Array<{ at: number; port: number; from: string }> = [];
  readonly invites: Array<{ at: number; port: number; callId: string }> = [];

  private constructor(private readonly ns: NetNamespace, private readonly listener: ChildProcess, readonly ports: number[], readonly refusedPort: number) {}

  get address(): string {
    return this.ns.phoneAddress;
  }

  /** `count` listening ports, each behind its own SYN-dropping rule. */
  static async start(count: number): Promise<SynDroppingTarget> {
    const ns = await NetNamespace.create();
    try {
      const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', LISTENER, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
      const lines = readline.createInterface({ input: child.stdout! });
      let target: SynDroppingTarget | undefined;
      const { ports, free } = await new Promise<{ ports: number[]; free: number }>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`the target's listener exited (${code})`)));
        lines.on('line', (line) => {
          const m = JSON.parse(line) as { ports?: number[]; free?: number; conn?: string; invite?: string; port?: number };
          if (m.ports && m.free) resolve({ ports: m.ports, free: m.free });
          if (m.conn) target?.connections.push({ at: Date.now(), port: m.port!, from: m.conn });
          if (m.invite) target?.invites.push({ at: Date.now(), port: m.port!, callId: m.invite });
        });
      });
      target = new SynDroppingTarget(ns, child, ports, free);
      for (const p of ports) await target.dropSyns(p);
      return target;
    } catch (err) {
      await ns.destroy();
      throw err;
    }
  }

  /** The fault: SYNs to `port` are dropped inside the namespace. */
  async dropSyns(port: number): Promise<void> {
    await this.ns.exec('iptables', ['-I', 'INPUT', '-p', 'tcp', '--syn', '--dport', String(port), '-j', 'DROP']);
  }

  /** The fault ends for `port`: SYNs are answered again (an attempt still retransmitting comes up at its next SYN). */
  async answerSyns(port: number): Promise<void> {
    await this.ns.exec('iptables', ['-D', 'INPUT', '-p', 'tcp', '--syn', '--dport', String(port), '-j', 'DROP']);
  }

  /** SYNs the rule of `port` dropped so far (its packet counter; 0 once the rule is gone). */
  async droppedSyns(port: number): Promise<number> {
    const out = await this.ns.exec('iptables', ['-L', 'INPUT', '-v', '-n', '-x']);
    const rule = out.split('\n').find((l) => l.includes('DROP') && new RegExp(`dpt:${port}\\b`).test(l));
    return rule ? Number(rule.trim().split(/\s+/)[0]) : 0;
  }

  /** Waits until the rule of `port` has dropped at least `n` SYNs. */
  async waitForDroppedSyns(port: number, n: number, timeoutMs = 5000): Promise<void> {
    await pollUntil(async () => (await this.droppedSyns(port)) >= n, { timeoutMs, what: `${n} SYN(s) to port ${port} dropped` });
  }

  async stop(): Promise<void> {
    this.listener.kill('SIGKILL');
    await this.ns.destroy();
  }
}

/** The listener run inside the namespace: prints its port, then one JSON line per connection and INVITE. */
const LISTENER = `
const net = require('net');
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const serve = (socket) => {
  const port = socket.localPort;
  say({ conn: socket.remoteAddress + ':' + socket.remotePort, port });
  let buf = Buffer.alloc(0);
  socket.on('error', () => {});
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const end = buf.indexOf('\\r\\n\\r\\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const len = Number((/^content-length\\s*:\\s*(\\d+)/im.exec(head) || [])[1] || 0);
      if (buf.length < end + 4 + len) return;
      buf = buf.subarray(end + 4 + len);
      const lines = head.split('\\r\\n');
      if (!/^INVITE /.test(lines[0])) continue;
      const pick = (n) => lines.filter((l) => l.toLowerCase().startsWith(n + ':'));
      const callId = (pick('call-id')[0] || '').replace(/^[^:]*:\\s*/, '');
      say({ invite: callId, port });
      const to = pick('to').map((l) => (/;tag=/.test(l) ? l : l + ';tag=busy1'));
      socket.write(['SIP/2.0 486 Busy Here', ...pick('via'), ...pick('from'), ...to, ...pick('call-id'), ...pick('cseq'), 'Content-Length: 0', '', ''].join('\\r\\n'));
    }
  });
};
const listen = (s) => new Promise((r) => s.listen(0, '0.0.0.0', () => r(s.address().port)));
(async () => {
  const ports = [];
  for (let i = 0; i < Number(process.argv[1]); i++) ports.push(await listen(net.createServer(serve)));
  const spare = net.createServer();
  const free = await listen(spare);
  spare.close(() => say({ ports, free }));
})();
`;
