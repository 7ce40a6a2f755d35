import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';

/**
 * Binds UDP sockets for RTP legs: an even port for RTP and, unless rtcp-mux, port+1 for RTCP
 * (RFC 3550 §11). Ports come from the OS, or from FERRY_MEDIA_RTP_PORT_MIN..MAX when a range is set.
 * The sockets resolve IP literals synchronously (ipLiteralLookup): a send to an address, and connect(),
 * then cost no DNS round trip through the event loop, and connect() to a latched peer completes at once.
 */
export class PortAllocator {
  private next: number;

  constructor(
    private readonly host: string,
    private readonly min: number,
    private readonly max: number,
  ) {
    this.next = min + (min % 2);
  }

  /** Bind an RTP socket (and an RTCP socket on port+1 when `withRtcp`). */
  async bindPair(withRtcp: boolean): Promise<{ rtp: dgram.Socket; rtcp: dgram.Socket | undefined }> {
    const attempts = this.min > 0 ? Math.max(1, Math.floor((this.max - this.min + 1) / 2)) : 50;
    for (let i = 0; i < attempts; i++) {
      const port = this.min > 0 ? this.nextInRange() : await this.osChosenPort(withRtcp);
      if (port === undefined) continue;
      const rtp = await bindOrUndefined(this.host, port);
      if (!rtp) continue;
      const rtpPort = rtp.address().port;
      if (!withRtcp) return { rtp, rtcp: undefined };
      const rtcp = rtpPort + 1 <= 65535 ? await bindOrUndefined(this.host, rtpPort + 1) : undefined;
      if (rtcp) return { rtp, rtcp };
      rtp.close();
    }
    throw new Error(
      this.min > 0 ? `no free RTP port pair in ${this.min}-${this.max} on ${this.host}` : `could not bind an RTP port pair on ${this.host}`,
    );
  }

  /**
   * A free port the OS picks (even when an RTCP port follows), which the caller then binds *by number*.
   * A socket bound to port 0 is not port-locked: on Linux, disconnect() (a re-INVITE moving a connect()ed
   * leg to a new peer) would drop its port and the leg would stop receiving; bound by number it keeps it.
   * The port is free between the probe's close and the bind only for a moment; a lost race is one retry.
   */
  private async osChosenPort(even: boolean): Promise<number | undefined> {
    const probe = await bindOrUndefined(this.host, 0);
    if (!probe) return undefined;
    const port = probe.address().port;
    await new Promise<void>((resolve) => closeQuietlyThen(probe, resolve));
    return even && port % 2 === 1 ? undefined : port;
  }

  private nextInRange(): number {
    if (this.next + 1 > this.max) this.next = this.min + (this.min % 2);
    const p = this.next;
    this.next += 2;
    return p;
  }
}

function closeQuietlyThen(s: dgram.Socket, done: () => void): void {
  try {
    s.close(done);
  } catch {
    done();
  }
}

function bindOrUndefined(host: string, port: number): Promise<dgram.Socket | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', lookup: ipLiteralLookup });
    const onError = () => {
      try {
        s.close();
      } catch {
        // a socket that never bound may refuse close(); nothing is held either way
      }
      resolve(undefined);
    };
    s.once('error', onError);
    s.bind(port, host, () => {
      s.removeListener('error', onError);
      resolve(s);
    });
  });
}

/**
 * dgram's lookup for RTP sockets: an IP literal (every address an SDP or a latch gives us) is answered
 * synchronously, without dns.lookup's deferred callback and its allocations per send; a name (never
 * expected here) goes through dns.lookup as before.
 */
export function ipLiteralLookup(
  hostname: string,
  options: dns.LookupOneOptions | number,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const family = net.isIP(hostname);
  if (family !== 0) {
    callback(null, hostname, family);
    return;
  }
  const opts: dns.LookupOneOptions = typeof options === 'number' ? { family: options } : options;
  dns.lookup(hostname, opts, callback);
}
