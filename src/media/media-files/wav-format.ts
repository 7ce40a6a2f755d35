/**
 * The WAV (RIFF/WAVE) container: reading the audio a PlayerEndpoint plays, and the 44-byte header a
 * RecorderEndpoint writes. The reader walks chunks with bounds checks only (never trusts a size field
 * beyond the bytes present) and reports what it cannot play as a `MediaFormatError`.
 */
export class MediaFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MediaFormatError';
  }
}

/** WAVE format tags ferry media reads. */
export const WAV_FORMAT_PCM = 1;
export const WAV_FORMAT_FLOAT = 3;
export const WAV_FORMAT_ALAW = 6;
export const WAV_FORMAT_MULAW = 7;
const WAV_FORMAT_EXTENSIBLE = 0xfffe;

export interface WavAudio {
  /** WAV_FORMAT_PCM, _FLOAT, _ALAW or _MULAW (an extensible header is resolved to its sub-format). */
  format: number;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
  /** The sample bytes (a view into the input), cut to whole frames. */
  data: Buffer;
}

export function looksLikeWav(bytes: Buffer): boolean {
  return bytes.length >= 12 && bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WAVE';
}

/** Most chunks a header may have before `data` (LIST, fact, cue... ); more is not a file anyone wrote for playing. */
const MAX_CHUNKS = 64;

export function parseWav(bytes: Buffer): WavAudio {
  if (!looksLikeWav(bytes)) throw new MediaFormatError('not a RIFF/WAVE file');
  let fmt: Omit<WavAudio, 'data'> | undefined;
  let offset = 12;
  for (let chunks = 0; offset + 8 <= bytes.length; chunks++) {
    if (chunks >= MAX_CHUNKS) throw new MediaFormatError(`more than ${MAX_CHUNKS} chunks before the audio data`);
    const id = bytes.toString('latin1', offset, offset + 4);
    const size = bytes.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + size > bytes.length) throw new MediaFormatError('truncated fmt chunk');
      fmt = readFmt(bytes.subarray(body, body + size));
    } else if (id === 'data') {
      if (!fmt) throw new MediaFormatError('data chunk before the fmt chunk');
      // A size larger than the file (a recording whose header was never finalized) plays what is there.
      const end = Math.min(bytes.length, body + size);
      const frame = (fmt.channels * fmt.bitsPerSample) / 8;
      const usable = Math.floor((end - body) / frame) * frame;
      return { ...fmt, data: bytes.subarray(body, body + usable) };
    }
    offset = body + size + (size & 1);
  }
  throw new MediaFormatError(fmt ? 'no data chunk' : 'no fmt chunk');
}

function readFmt(fmt: Buffer): Omit<WavAudio, 'data'> {
  let format = fmt.readUInt16LE(0);
  const channels = fmt.readUInt16LE(2);
  const sampleRate = fmt.readUInt32LE(4);
  const bitsPerSample = fmt.readUInt16LE(14);
  if (format === WAV_FORMAT_EXTENSIBLE) {
    if (fmt.length < 26) throw new MediaFormatError('truncated WAVE_FORMAT_EXTENSIBLE header');
    format = fmt.readUInt16LE(24); // the first two bytes of the sub-format GUID are the format tag
  }
  const known = new Map<number, number[]>([
    [WAV_FORMAT_PCM, [8, 16, 24, 32]],
    [WAV_FORMAT_FLOAT, [32]],
    [WAV_FORMAT_ALAW, [8]],
    [WAV_FORMAT_MULAW, [8]],
  ]);
  const bits = known.get(format);
  if (!bits) throw new MediaFormatError(`WAV format tag ${format} is not supported (PCM, IEEE float, A-law or µ-law only)`);
  if (!bits.includes(bitsPerSample)) throw new MediaFormatError(`${bitsPerSample}-bit samples are not supported for WAV format tag ${format}`);
  if (channels < 1 || channels > 8) throw new MediaFormatError(`${channels} channels is not supported (1 to 8)`);
  return { format, channels, sampleRate, bitsPerSample };
}

/** The 44-byte header of a mono 16-bit PCM WAV holding `dataBytes` bytes of samples. */
export function pcm16WavHeader(sampleRate: number, channels: number, dataBytes: number): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write('WAVE', 8, 'latin1');
  h.write('fmt ', 12, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(WAV_FORMAT_PCM, 20);
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * channels * 2, 28);
  h.writeUInt16LE(channels * 2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(dataBytes, 40);
  return h;
}

/** The largest data size a WAV header can state (32-bit RIFF size = 36 + data). */
export const WAV_MAX_DATA_BYTES = 0xffffffff - 36;
