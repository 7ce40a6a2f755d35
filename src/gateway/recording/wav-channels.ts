import { open, type FileHandle } from 'node:fs/promises';

/** a WAV's 16-bit PCM mono sample data: where it starts in the file and how many bytes it has */
export interface MonoWav {
  dataOffset: number;
  dataBytes: number;
  sampleRate: number;
}

/** longest header looked through for the data chunk */
const HEADER_SCAN = 4096;

/**
 * Reads a RIFF/WAVE header (the fmt and data chunks) and checks it is 16-bit PCM mono, as ferry
 * media's RecorderEndpoint writes it. The data size is the smaller of the header's and what the file
 * holds (a recording cut off by a crash has a header a second behind).
 */
export async function readMonoWav(h: FileHandle): Promise<MonoWav> {
  const { size } = await h.stat();
  const head = Buffer.alloc(Math.min(HEADER_SCAN, size));
  await h.read(head, 0, head.length, 0);
  if (head.length < 12 || head.toString('ascii', 0, 4) !== 'RIFF' || head.toString('ascii', 8, 12) !== 'WAVE') throw new Error('not a WAV file');
  let at = 12;
  let fmt: { channels: number; rate: number; bits: number; format: number } | undefined;
  while (at + 8 <= head.length) {
    const id = head.toString('ascii', at, at + 4);
    const len = head.readUInt32LE(at + 4);
    if (id === 'fmt ' && at + 24 <= head.length) {
      fmt = { format: head.readUInt16LE(at + 8), channels: head.readUInt16LE(at + 10), rate: head.readUInt32LE(at + 12), bits: head.readUInt16LE(at + 22) };
    } else if (id === 'data') {
      if (!fmt || fmt.format !== 1 || fmt.channels !== 1 || fmt.bits !== 16) throw new Error('not a 16-bit PCM mono WAV');
      const dataOffset = at + 8;
      const dataBytes = Math.min(len, size - dataOffset) & ~1;
      return { dataOffset, dataBytes, sampleRate: fmt.rate };
    }
    at += 8 + len + (len & 1);
  }
  throw new Error('WAV without a data chunk');
}

/** the 44-byte header of a 16-bit PCM WAV */
export function wavHeader(channels: number, sampleRate: number, dataBytes: number): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write('WAVE', 8, 'ascii');
  h.write('fmt ', 12, 'ascii');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * channels * 2, 28);
  h.writeUInt16LE(channels * 2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(dataBytes, 40);
  return h;
}

/** samples read from each file per step of the merge */
const CHUNK_SAMPLES = 8000;

/**
 * Two mono 16-bit WAVs (same rate) as one 2-channel WAV, streamed: channel 1 = `left`, channel 2 =
 * `right`; the shorter one is padded with silence. Yields the header, then interleaved chunks.
 * Memory: one chunk per file, whatever the length.
 */
export async function* interleaveWavs(leftPath: string, rightPath: string): AsyncGenerator<Buffer> {
  const handles: FileHandle[] = [];
  try {
    const l = await open(leftPath, 'r');
    handles.push(l);
    const r = await open(rightPath, 'r');
    handles.push(r);
    const [lw, rw] = [await readMonoWav(l), await readMonoWav(r)];
    if (lw.sampleRate !== rw.sampleRate) throw new Error('the two recordings have different sample rates');
    const samples = Math.max(lw.dataBytes, rw.dataBytes) / 2;
    yield wavHeader(2, lw.sampleRate, samples * 4);
    const lb = Buffer.alloc(CHUNK_SAMPLES * 2);
    const rb = Buffer.alloc(CHUNK_SAMPLES * 2);
    for (let done = 0; done < samples; done += CHUNK_SAMPLES) {
      const n = Math.min(CHUNK_SAMPLES, samples - done);
      const readInto = async (h: FileHandle, w: MonoWav, b: Buffer): Promise<void> => {
        b.fill(0, 0, n * 2);
        const want = Math.max(0, Math.min(n * 2, w.dataBytes - done * 2));
        if (want > 0) await h.read(b, 0, want, w.dataOffset + done * 2);
      };
      await readInto(l, lw, lb);
      await readInto(r, rw, rb);
      const out = Buffer.alloc(n * 4);
      for (let i = 0; i < n; i++) {
        out.writeInt16LE(lb.readInt16LE(i * 2), i * 4);
        out.writeInt16LE(rb.readInt16LE(i * 2), i * 4 + 2);
      }
      yield out;
    }
  } finally {
    for (const h of handles) await h.close().catch(() => undefined);
  }
}

/** the size of the 2-channel WAV interleaveWavs() yields, without reading the samples */
export async function interleavedSize(leftPath: string, rightPath: string): Promise<number> {
  const sizes: number[] = [];
  for (const p of [leftPath, rightPath]) {
    const h = await open(p, 'r');
    try {
      sizes.push((await readMonoWav(h)).dataBytes);
    } finally {
      await h.close();
    }
  }
  return 44 + (Math.max(sizes[0]!, sizes[1]!) / 2) * 4;
}
