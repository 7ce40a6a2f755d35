import type { FileHandle } from 'node:fs/promises';
import { pcm16WavHeader, WAV_MAX_DATA_BYTES } from './wav-format';

const HEADER_BYTES = 44;

/**
 * Writes a mono 16-bit PCM WAV file that is valid at every moment it is on disk: the header is written
 * first (with zero sizes), and every `flush()` appends the samples gathered since and then rewrites the
 * two size fields, so a process killed mid-recording leaves a playable file holding everything up to
 * the last flush. `close()` flushes, finalises and closes; it is idempotent. All file operations run in
 * one chain, in order. A write error is reported once through `onError` and ends the writing (later
 * samples are dropped; close still closes the file).
 */
export class WavRecordingWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writtenBytes = 0;
  private chain: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;
  private failed = false;

  constructor(
    private readonly fh: FileHandle,
    private readonly sampleRate: number,
    private readonly onError: (err: Error) => void,
  ) {
    void this.run(async () => {
      await fh.write(pcm16WavHeader(sampleRate, 1, 0), 0, HEADER_BYTES, 0);
    });
  }

  /** Data bytes accepted so far (written or waiting for the next flush). */
  get dataBytes(): number {
    return this.writtenBytes + this.pendingBytes;
  }

  /** Whether `samples` more samples still fit under the WAV size limit. */
  fits(samples: number): boolean {
    return this.dataBytes + samples * 2 <= WAV_MAX_DATA_BYTES;
  }

  /** Queue `count` samples (silence when `pcm` is undefined) for the next flush. */
  append(pcm: Int16Array | undefined, count = pcm?.length ?? 0): void {
    if (this.closing || this.failed || count <= 0) return;
    const b = Buffer.alloc(count * 2);
    if (pcm) for (let i = 0; i < count; i++) b.writeInt16LE(pcm[i]!, i * 2);
    this.pending.push(b);
    this.pendingBytes += b.length;
  }

  flush(): Promise<void> {
    if (this.closing) return this.closing;
    return this.flushNow();
  }

  private flushNow(): Promise<void> {
    const chunks = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    if (bytes === 0) return this.chain;
    return this.run(async () => {
      const at = HEADER_BYTES + this.writtenBytes;
      const data = Buffer.concat(chunks, bytes);
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await this.fh.write(data, done, data.length - done, at + done);
        done += bytesWritten;
      }
      this.writtenBytes += bytes;
      const sizes = pcm16WavHeader(this.sampleRate, 1, this.writtenBytes);
      await this.fh.write(sizes, 4, 4, 4);
      await this.fh.write(sizes, 40, 4, 40);
    });
  }

  close(): Promise<void> {
    if (!this.closing) {
      const flushed = this.flushNow();
      this.closing = flushed.then(async () => {
        if (!this.failed) await this.fh.sync().catch(() => undefined);
        await this.fh.close().catch(() => undefined);
      });
    }
    return this.closing;
  }

  private run(op: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      try {
        await op();
      } catch (err) {
        this.failed = true;
        this.onError(err as Error);
      }
    });
    return this.chain;
  }
}
