/**
 * drachtio control-protocol framing: `<decimal byte length>#<payload>`.
 * Frames may be split across or packed into TCP segments. A bad length prefix is unrecoverable.
 * The largest frame accepted is asked for frame by frame (`maxFrameBytes`), so a connection can be held
 * to a small limit until it has authenticated: an announced length above it fails at once, before any
 * of the frame is buffered.
 */
export interface DecodedFrames {
  frames: string[];
  error: string | undefined;
}

/** One step of the decoder: a whole frame, an unrecoverable error, or nothing yet (wait for more bytes). */
export type NextFrame = { frame: string } | { error: string } | undefined;

/** The limit for an authenticated drachtio-srf app (a SIP message with a large body fits). */
export const AUTHENTICATED_MAX_FRAME_BYTES = 10_000_000;

export class ControlFrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrameBytes: () => number = () => AUTHENTICATED_MAX_FRAME_BYTES) {}

  /** Bytes received and not yet returned as frames. */
  get buffered(): number {
    return this.buf.length;
  }

  append(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
  }

  /** The next whole frame, checked against the limit in force now. */
  next(): NextFrame {
    const hash = this.buf.indexOf('#');
    if (hash < 0) return this.buf.length > 10 ? { error: 'missing length prefix' } : undefined;
    const lenText = this.buf.toString('latin1', 0, hash);
    if (!/^\d{1,8}$/.test(lenText)) return { error: `invalid length prefix ${JSON.stringify(lenText.slice(0, 12))}` };
    const len = Number(lenText);
    const max = this.maxFrameBytes();
    if (len <= 0) return { error: `invalid frame length ${len}` };
    if (len > max) return { error: `frame of ${len} bytes is above the limit of ${max}` };
    if (this.buf.length < hash + 1 + len) return undefined;
    const frame = this.buf.toString('utf8', hash + 1, hash + 1 + len);
    this.buf = this.buf.subarray(hash + 1 + len);
    return { frame };
  }

  /** append + every whole frame now in the buffer (all checked against the current limit). */
  push(chunk: Buffer): DecodedFrames {
    this.append(chunk);
    const out: DecodedFrames = { frames: [], error: undefined };
    for (;;) {
      const step = this.next();
      if (step === undefined) break;
      if ('error' in step) {
        out.error = step.error;
        break;
      }
      out.frames.push(step.frame);
    }
    return out;
  }
}

export function encodeControlFrame(payload: string): Buffer {
  const body = Buffer.from(payload, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length}#`, 'latin1'), body]);
}
