import type { Flow, SipProtocol } from './flow';

/**
 * A TCP or TLS connection still being opened, as a Flow: what is sent on it is held and written in order
 * once the connection is up (as sofia-sip queues a request on a connecting transport). `drop()` gives it
 * up: what is held is thrown away and a connection attempt still under way is aborted, so a connection
 * that would come up later carries nothing. A connection that comes up while `wanted()` is false is not
 * used either. Each request gets its own ConnectingFlow; nothing is shared between requests.
 */
export class ConnectingFlow implements Flow {
  readonly id: string;
  readonly reliable = true;
  /** unknown until the connection is up; the engine writes its advertised address in Via and Contact */
  readonly localAddress = '0.0.0.0';
  readonly localPort = 0;
  /** the connection once it is up; rejects when it is refused, fails or was dropped */
  readonly ready: Promise<Flow>;
  private held: Buffer[] = [];
  private up: Flow | undefined;
  private dropped = false;
  private wanted: () => boolean = () => true;
  private readonly abort = new AbortController();

  constructor(
    readonly protocol: SipProtocol,
    readonly remoteAddress: string,
    readonly remotePort: number,
    open: (signal: AbortSignal) => Promise<Flow>,
  ) {
    this.id = `${protocol}/connecting/${remoteAddress}:${remotePort}`;
    this.ready = open(this.abort.signal).then((flow) => {
      if (this.dropped || !this.wanted()) {
        this.drop();
        throw new Error(`connection to ${remoteAddress}:${remotePort} came up after it was given up`);
      }
      this.up = flow;
      const held = this.held;
      this.held = [];
      for (const data of held) flow.send(data);
      return flow;
    });
    this.ready.catch(() => undefined); // the owner of the flow handles the failure
  }

  /** The open connection, once it is up. */
  get connection(): Flow | undefined {
    return this.up;
  }

  /** Still waiting for the connection (neither up nor given up). */
  get connecting(): boolean {
    return !this.up && !this.dropped;
  }

  get closed(): boolean {
    return this.up ? this.up.closed : this.dropped;
  }

  send(data: Buffer): void {
    if (this.up) this.up.send(data);
    else if (!this.dropped) this.held.push(data);
  }

  /** Asked once the connection is up: false = nobody needs it any more (it is then not written to). */
  keepWhile(wanted: () => boolean): void {
    this.wanted = wanted;
  }

  /** Gives the connection up before it is used: held data is discarded, the attempt aborted. No-op once up. */
  drop(): void {
    if (this.up || this.dropped) return;
    this.dropped = true;
    this.held = [];
    this.abort.abort();
  }
}
