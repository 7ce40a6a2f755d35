/**
 * Cuts a TCP byte stream into SIP messages using Content-Length (RFC 3261 §18.3).
 * CRLF keep-alives (RFC 5626 §4.4.1 "double CRLF" ping) between messages are reported so the
 * transport can answer a single CRLF pong. A stream whose headers exceed the limit or whose
 * Content-Length is unreadable is unrecoverable: `push` then returns an error and the caller closes.
 */
export interface FramerOutput {
  messages: Buffer[];
  pings: number;
  error: string | undefined;
}

const MAX_HEAD = 65_536;
const MAX_BODY = 1_048_576;

export class SipStreamFramer {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): FramerOutput {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: FramerOutput = { messages: [], pings: 0, error: undefined };
    for (;;) {
      // leading CRLFs: keep-alive pings ("\r\n\r\n") or stray line ends
      let skip = 0;
      while (skip + 1 < this.buf.length && this.buf[skip] === 13 && this.buf[skip + 1] === 10) skip += 2;
      if (skip > 0) {
        out.pings += Math.floor(skip / 4);
        this.buf = this.buf.subarray(skip);
      }
      if (this.buf.length === 0) break;
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.buf.length > MAX_HEAD) out.error = 'headers too large';
        break;
      }
      const head = this.buf.toString('latin1', 0, end);
      const m = /(?:^|\r\n)(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)/i.exec(head);
      let cl = 0;
      if (m) {
        if (!/^\d{1,9}\s*$/.test(m[1])) { out.error = 'bad Content-Length'; break; }
        cl = Number(m[1].trim());
        if (cl > MAX_BODY) { out.error = 'body too large'; break; }
      } else {
        out.error = 'missing Content-Length on a stream';
        break;
      }
      const total = end + 4 + cl;
      if (this.buf.length < total) break;
      out.messages.push(Buffer.from(this.buf.subarray(0, total)));
      this.buf = this.buf.subarray(total);
    }
    return out;
  }
}
