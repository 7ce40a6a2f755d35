/**
 * Cuts a TCP byte stream into SIP messages using Content-Length (RFC 3261 §18.3).
 * CRLF keep-alives (RFC 5626 §4.4.1 "double CRLF" ping) between messages are reported so the
 * transport can answer a single CRLF pong.
 *
 * Memory is bounded by `maxMessageBytes` (headers and body together): bytes of an incomplete message
 * are copied into one buffer that never grows past the limit (plus one read chunk), and a message whose
 * Content-Length announces more than the limit is refused as soon as its headers are complete, before
 * any of its body is kept. A refused stream is unrecoverable: `push` returns an `error` (and, when the
 * headers were complete, `refusedHead`, so the transport can answer 413, or 400 for an unreadable,
 * missing or conflicting Content-Length) and the caller closes.
 * After every push, `pending` says whether a message is half-read (for the transport's read deadlines).
 */
export interface FramerOutput {
  messages: Buffer[];
  pings: number;
  error: string | undefined;
  /** the error is a size limit (headers or whole message too large), not unreadable framing */
  tooLarge: boolean;
  /** the headers of a refused message whose headers were complete (its body was never read): enough to answer it */
  refusedHead: Buffer | undefined;
}

/** What the framer holds between pushes: nothing, part of a message's headers, or complete headers and part of its body. */
export type FramerPending = 'none' | 'headers' | 'body';

export const DEFAULT_MAX_MESSAGE_BYTES = 65_536;

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const CONTENT_LENGTH_LINE = /(?:^|\r\n)(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)/gi;

/** The value of every Content-Length header line (long or compact name) in a message head. */
function contentLengths(head: string): string[] {
  return [...head.matchAll(CONTENT_LENGTH_LINE)].map((m) => m[1]);
}

export class SipStreamFramer {
  /** bytes of the incomplete message, `store[0..len)`; empty between messages */
  private store: Buffer = Buffer.alloc(0);
  private len = 0;
  /** where the search for the end of headers resumes in `store` */
  private scanFrom = 0;
  /** total size of the message being read, once its headers are complete */
  private messageBytes = 0;
  private failed = false;

  constructor(private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  get pending(): FramerPending {
    if (this.len === 0) return 'none';
    return this.messageBytes > 0 ? 'body' : 'headers';
  }

  /** Bytes held for an incomplete message (at most the limit plus one read chunk). */
  get bufferedBytes(): number {
    return this.store.length;
  }

  push(chunk: Buffer): FramerOutput {
    const out: FramerOutput = { messages: [], pings: 0, error: undefined, tooLarge: false, refusedHead: undefined };
    if (this.failed) {
      out.error = 'stream already refused';
      return out;
    }
    let data = chunk;
    const fromStore = this.len > 0;
    if (fromStore) {
      this.append(chunk);
      data = this.store.subarray(0, this.len);
    }
    let pos = 0;
    // `scan`: where to look for the end of headers in `data`, relative to `pos`
    let scan = fromStore ? this.scanFrom : 0;
    for (;;) {
      if (this.messageBytes === 0) {
        // leading CRLFs: keep-alive pings ("\r\n\r\n") or stray line ends
        let skip = 0;
        while (pos + skip + 1 < data.length && data[pos + skip] === 13 && data[pos + skip + 1] === 10) skip += 2;
        if (skip > 0) {
          out.pings += Math.floor(skip / 4);
          pos += skip;
          scan = 0;
        }
        if (pos >= data.length) break;
        const end = data.indexOf(CRLFCRLF, pos + Math.max(0, scan - 3));
        if (end < 0) {
          if (data.length - pos > this.maxMessageBytes) return this.fail(out, `headers larger than ${this.maxMessageBytes} bytes`, true);
          scan = data.length - pos;
          break;
        }
        const headEnd = end + 4;
        const head = data.toString('latin1', pos, end);
        const lengths = contentLengths(head);
        if (lengths.length === 0 || !lengths.every((l) => /^\d{1,9}\s*$/.test(l))) {
          out.refusedHead = Buffer.from(data.subarray(pos, headEnd));
          return this.fail(out, lengths.length ? 'bad Content-Length' : 'missing Content-Length on a stream');
        }
        // two different lengths: where this message ends, and the next begins, cannot be known
        if (new Set(lengths.map((l) => Number(l.trim()))).size > 1) {
          out.refusedHead = Buffer.from(data.subarray(pos, headEnd));
          return this.fail(out, 'conflicting Content-Length values');
        }
        const total = headEnd - pos + Number(lengths[0].trim());
        if (total > this.maxMessageBytes) {
          out.refusedHead = Buffer.from(data.subarray(pos, headEnd));
          return this.fail(out, `message of ${total} bytes is larger than ${this.maxMessageBytes} bytes`, true);
        }
        this.messageBytes = total;
      }
      if (data.length - pos < this.messageBytes) break;
      out.messages.push(Buffer.from(data.subarray(pos, pos + this.messageBytes)));
      pos += this.messageBytes;
      this.messageBytes = 0;
      scan = 0;
    }
    this.keep(data, fromStore, pos, scan);
    return out;
  }

  /** Keeps `data[pos..]` (the incomplete message) for the next push; frees the store when nothing is left. */
  private keep(data: Buffer, fromStore: boolean, pos: number, scan: number): void {
    const rest = data.length - pos;
    this.scanFrom = scan;
    if (rest === 0) {
      this.release();
      return;
    }
    if (fromStore) {
      if (pos > 0) this.store.copyWithin(0, pos, this.len);
      this.len = rest;
      return;
    }
    this.len = 0;
    this.append(data.subarray(pos));
  }

  private append(bytes: Buffer): void {
    const need = this.len + bytes.length;
    if (need > this.store.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, Math.min(this.store.length * 2, this.maxMessageBytes + bytes.length), 1024));
      this.store.copy(grown, 0, 0, this.len);
      this.store = grown;
    }
    bytes.copy(this.store, this.len);
    this.len = need;
  }

  private release(): void {
    this.store = Buffer.alloc(0);
    this.len = 0;
    this.scanFrom = 0;
  }

  private fail(out: FramerOutput, why: string, tooLarge = false): FramerOutput {
    out.error = why;
    out.tooLarge = tooLarge;
    this.failed = true;
    this.messageBytes = 0;
    this.release();
    return out;
  }
}
