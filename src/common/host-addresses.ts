import os from 'node:os';
import { plainAddress } from './nat-addresses';

/** How long the interface list is kept before it is read again (an address added at run time shows within this). */
const REFRESH_MS = 10_000;

let cached: { at: number; addresses: Set<string> } | undefined;

/**
 * The IP addresses of this host's own interfaces (os.networkInterfaces(), loopback included), in the form
 * plainAddress gives, read at most every 10 s. `now` is for tests.
 */
export function thisHostAddresses(now: number = Date.now()): ReadonlySet<string> {
  if (!cached || now - cached.at >= REFRESH_MS) {
    const addresses = new Set<string>();
    for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) addresses.add(plainAddress(a.address));
    cached = { at: now, addresses };
  }
  return cached.addresses;
}

/** True for an address of this host: one of its interfaces', or any loopback address (127/8, ::1). */
export function isThisHostAddress(address: string): boolean {
  const a = plainAddress(address);
  return a.startsWith('127.') || a === '::1' || thisHostAddresses().has(a);
}
