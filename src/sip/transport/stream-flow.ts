import type { Flow, SipProtocol } from './flow';

/** A Flow over one TCP or WebSocket connection. */
export class StreamFlow implements Flow {
  readonly reliable = true;
  closed = false;

  constructor(
    readonly id: string,
    readonly protocol: SipProtocol,
    readonly remoteAddress: string,
    readonly remotePort: number,
    readonly localAddress: string,
    readonly localPort: number,
    private readonly writer: (data: Buffer) => void,
  ) {}

  send(data: Buffer): void {
    if (this.closed) return;
    try {
      this.writer(data);
    } catch { /* connection went away: the close handler cleans up */ }
  }
}
