import { parseIpv6 } from '../../common/source-key';

/**
 * Which of this host's IPv6 addresses (`own`, link-local left out) ferry sip writes in Via, Contact and
 * Record-Route for a peer on IPv6 when it listens dual-stack on `::` with no advertised host: the
 * loopback address for a peer on loopback; else the address sharing the peer's /64 or a longer prefix
 * (a phone on the same link); else, for a peer on a unique local address (fc00::/7), the first unique
 * local one, and for any other peer the first global one; else the first non-loopback one; else `::1`.
 */
export function ipv6AddressFor(peer: string, own: readonly string[]): string {
  const p = parseIpv6(peer);
  const candidates = own.filter((a) => parseIpv6(a) !== undefined);
  const isLoop = (a: string): boolean => a === '::1' || parseIpv6(a)!.every((g, i) => g === (i === 7 ? 1 : 0));
  if (p && isLoop(peer)) return '::1';
  const external = candidates.filter((a) => !isLoop(a));
  if (p) {
    let best: { a: string; bits: number } | undefined;
    for (const a of external) {
      const bits = commonBits(p, parseIpv6(a)!);
      if (bits >= 64 && (!best || bits > best.bits)) best = { a, bits };
    }
    if (best) return best.a;
  }
  const ula = (a: string): boolean => (parseIpv6(a)![0]! & 0xfe00) === 0xfc00;
  const peerUla = p !== undefined && ula(peer);
  return external.find((a) => ula(a) === peerUla) ?? external[0] ?? '::1';
}

function commonBits(a: number[], b: number[]): number {
  let bits = 0;
  for (let i = 0; i < 8; i++) {
    const x = a[i]! ^ b[i]!;
    if (x === 0) {
      bits += 16;
      continue;
    }
    return bits + Math.clz32(x) - 16;
  }
  return bits;
}
