/**
 * Where lost packets died: the kernel's per-socket UDP receive-buffer drop counters
 * (/proc/net/udp "drops"), summed over the sockets a set of processes holds. A socket drops when its
 * owner does not read it fast enough (a stalled event loop), so drops on the server's sockets and
 * drops on the load generator's sockets tell the two apart.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { processTree } from './proc-sampler';

/** inode -> cumulative drops, for every UDP socket on the machine. */
export function readUdpDrops(): Map<number, number> {
  const out = new Map<number, number>();
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 13) continue;
      out.set(Number(f[9]), Number(f[12]));
    }
  }
  return out;
}

/** Socket inodes held by the given processes and their descendants. */
export function socketInodes(pids: readonly number[]): Set<number> {
  const inodes = new Set<number>();
  for (const root of pids) {
    for (const pid of processTree(root)) {
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        try {
          const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
          if (m) inodes.add(Number(m[1]));
        } catch {
          // fd closed meanwhile
        }
      }
    }
  }
  return inodes;
}

/** Total receive-buffer drops so far on the sockets of `pids`. */
export function udpDropsOf(pids: readonly number[]): number {
  const drops = readUdpDrops();
  let total = 0;
  for (const inode of socketInodes(pids)) total += drops.get(inode) ?? 0;
  return total;
}
