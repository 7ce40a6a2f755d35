import { randomUUID } from 'node:crypto';
import type net from 'node:net';
import { encodeControlFrame } from './control-frame-decoder';

/** One drachtio-srf application connected to the control port. */
export class AppConnection {
  authenticated = false;
  closed = false;
  /** Set once the server decided to drop this connection: no further frame of it is handled. */
  closing = false;
  readonly routes = new Set<string>();
  tags: string[] = [];

  /** `outbound`: ferry sip opened this connection to an app listening with `srf.listen()` (outbound connection mode) */
  constructor(readonly id: string, private readonly socket: net.Socket, readonly outbound = false) {}

  get remoteAddress(): string {
    return this.socket.remoteAddress ?? '?';
  }

  get remote(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  /** Sends `<uuid>|<tokens...>[CRLF<sip>]`; returns the message id. */
  send(tokens: string[], sip?: string): string {
    const id = randomUUID();
    const payload = `${id}|${tokens.join('|')}${sip !== undefined ? `\r\n${sip}` : ''}`;
    if (!this.closed) this.socket.write(encodeControlFrame(payload));
    return id;
  }

  /** `response|<rid>|OK|...` or `NOK|reason` answers to one app message. */
  respond(rid: string, tokens: string[], sip?: string): void {
    this.send(['response', rid, ...tokens], sip);
  }

  close(): void {
    this.closing = true;
    this.socket.destroy();
  }
}
