/**
 * The file of a `multipart/form-data` body (RFC 7578), read as it streams: the first part that names a
 * `filename` (what a browser's file input or `FormData.append(name, blob, filename)` sends, and the part
 * Kurento's HTTP endpoint takes) is handed over chunk by chunk; the other parts are skipped. Everything
 * it holds is bounded: a part's headers at most 8 KiB, the look-behind the length of the delimiter.
 */
export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

export interface MultipartFileHeaders {
  filename: string;
  contentType: string | undefined;
}

const MAX_PART_HEADER_BYTES = 8 * 1024;
const HEADER_END = Buffer.from('\r\n\r\n');

/** The `boundary` parameter of a multipart Content-Type (1 to 70 characters, RFC 2046), or undefined. */
export function multipartBoundary(contentType: string): string | undefined {
  const m = /;\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType);
  return m?.[1] ?? m?.[2];
}

type State = 'preamble' | 'after-boundary' | 'headers' | 'body' | 'done';

export class MultipartFileReader {
  private readonly delimiter: Buffer;
  // the body is read as if it began with CRLF, so a delimiter at its very start is found like any other
  private buf: Buffer = Buffer.from('\r\n');
  private state: State = 'preamble';
  /** Whether the part being read is the file (else its body is skipped). */
  private inFile = false;
  private fileSeen = false;

  constructor(
    boundary: string,
    private readonly onFile: (headers: MultipartFileHeaders) => void,
    private readonly onData: (chunk: Buffer) => void,
  ) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
  }

  /** Whether the file part has been read to its end. */
  get fileComplete(): boolean {
    return this.fileSeen && !this.inFile;
  }

  push(chunk: Buffer): void {
    if (this.state === 'done') return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.state === 'preamble' || this.state === 'body') {
        const at = this.buf.indexOf(this.delimiter);
        if (at < 0) {
          // keep what could be the start of a delimiter; the rest is body (or preamble, dropped)
          const safe = Math.max(0, this.buf.length - (this.delimiter.length - 1));
          if (this.state === 'body' && this.inFile && safe > 0) this.onData(this.buf.subarray(0, safe));
          this.buf = this.buf.subarray(safe);
          return;
        }
        if (this.state === 'body' && this.inFile) {
          if (at > 0) this.onData(this.buf.subarray(0, at));
          this.inFile = false;
        }
        this.buf = this.buf.subarray(at + this.delimiter.length);
        this.state = 'after-boundary';
        if (this.fileComplete) {
          this.state = 'done';
          this.buf = Buffer.alloc(0);
          return;
        }
      }
      if (this.state === 'after-boundary') {
        if (this.buf.length < 2) return;
        const two = this.buf.toString('latin1', 0, 2);
        if (two === '--') {
          this.state = 'done';
          this.buf = Buffer.alloc(0);
          return;
        }
        // transport padding (spaces, tabs) may follow a delimiter before its CRLF
        const eol = this.buf.indexOf('\r\n');
        if (eol < 0) {
          if (this.buf.length > 256) throw new MultipartError('malformed multipart body: no line end after a boundary');
          return;
        }
        if (this.buf.subarray(0, eol).toString('latin1').trim() !== '') throw new MultipartError('malformed multipart body: text after a boundary');
        // the header block may be empty: CRLF CRLF right after the delimiter line
        this.buf = Buffer.concat([Buffer.from('\r\n'), this.buf.subarray(eol + 2)]);
        this.state = 'headers';
      }
      if (this.state === 'headers') {
        const end = this.buf.indexOf(HEADER_END);
        if (end < 0) {
          if (this.buf.length > MAX_PART_HEADER_BYTES) throw new MultipartError(`malformed multipart body: part headers longer than ${MAX_PART_HEADER_BYTES} bytes`);
          return;
        }
        const headers = parsePartHeaders(this.buf.subarray(2, end).toString('latin1'));
        this.buf = this.buf.subarray(end + HEADER_END.length);
        this.state = 'body';
        if (!this.fileSeen && headers.filename !== undefined) {
          this.fileSeen = true;
          this.inFile = true;
          this.onFile({ filename: headers.filename, contentType: headers.contentType });
        }
      }
    }
  }

  /** The body is over: an error unless the file part was read to its end. */
  end(): void {
    if (!this.fileSeen) throw new MultipartError('the multipart body holds no file part (a part with a filename)');
    if (!this.fileComplete) throw new MultipartError('the multipart body ends inside its file part');
  }
}

function parsePartHeaders(block: string): { filename: string | undefined; contentType: string | undefined } {
  let filename: string | undefined;
  let contentType: string | undefined;
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-type') contentType = value;
    else if (name === 'content-disposition') {
      const m = /;\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]*))/i.exec(value);
      if (m) filename = (m[1] ?? m[2] ?? '').replace(/\\(.)/g, '$1');
    }
  }
  return { filename, contentType };
}
