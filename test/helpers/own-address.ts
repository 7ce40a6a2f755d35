import os from 'node:os';

/** this host's first non-loopback IPv4 address: a source that is not loopback (another machine, as far as ferry can tell) */
export function ownIPv4Address(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}
