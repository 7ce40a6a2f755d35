import dgram from 'node:dgram';

/**
 * werift binds its ICE sockets without an 'error' listener: an address this host does not have
 * (FERRY_MEDIA_ICE_ADDRESSES / FERRY_MEDIA_HOST misconfigured) would throw an uncaught EADDRNOTAVAIL and
 * leave the negotiation hanging. So each address is probed once per process with a socket of our own,
 * and a bad one fails the SDP negotiation with a clear message instead.
 */
const bindable = new Map<string, true>();

export async function unbindableAddresses(addresses: readonly string[]): Promise<string[]> {
  const bad: string[] = [];
  for (const address of addresses) {
    if (bindable.has(address)) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => {
        s.close();
        resolve(false);
      });
      s.bind(0, address, () => s.close(() => resolve(true)));
    });
    if (ok) bindable.set(address, true);
    else bad.push(address);
  }
  return bad;
}
