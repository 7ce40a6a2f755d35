/**
 * drachtio control-protocol framing: `<decimal byte length>#<payload>` (research note §1.1).
 * Frames may be split across or packed into TCP segments. A bad length prefix is unrecoverable.
 */
export interface DecodedFrames {
  frames: string[];
  error: string | undefined;
}

const MAX_FRAME = 10_000_000;

export class ControlFrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): DecodedFrames {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: DecodedFrames = { frames: [], error: undefined };
    for (;;) {
      const hash = this.buf.indexOf('#');
      if (hash < 0) {
        if (this.buf.length > 10) out.error = 'missing length prefix';
        break;
      }
      const lenText = this.buf.toString('latin1', 0, hash);
      if (!/^\d{1,8}$/.test(lenText)) {
        out.error = `invalid length prefix ${JSON.stringify(lenText.slice(0, 12))}`;
        break;
      }
      const len = Number(lenText);
      if (len <= 0 || len > MAX_FRAME) {
        out.error = `invalid frame length ${len}`;
        break;
      }
      if (this.buf.length < hash + 1 + len) break;
      out.frames.push(this.buf.toString('utf8', hash + 1, hash + 1 + len));
      this.buf = this.buf.subarray(hash + 1 + len);
    }
    return out;
  }
}

export function encodeControlFrame(payload: string): Buffer {
  const body = Buffer.from(payload, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length}#`, 'latin1'), body]);
}
