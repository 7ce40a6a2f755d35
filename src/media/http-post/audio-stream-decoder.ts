import { decodeG711, type G711Law } from '../media-files/g711';
import { MAX_FILE_RATE, MIN_FILE_RATE, TELEPHONE_RATE, decodeTelephoneAudio } from '../media-files/telephone-audio';
import { looksLikeWav, MediaFormatError, parseWav, WAV_FORMAT_ALAW, WAV_FORMAT_MULAW, WAV_FORMAT_PCM } from '../media-files/wav-format';

/** What an upload holds: a WAV file (recognised by its header), or raw G.711 at 8 kHz. */
export type UploadAudioKind = 'wav' | G711Law;

/** Header bytes read before a WAV's `data` chunk at most (fmt, LIST, fact...). */
const MAX_WAV_HEADER_BYTES = 64 * 1024;
/** Chunks before `data` at most (as the file reader, wav-format.ts). */
const MAX_CHUNKS = 64;

/**
 * Turns uploaded bytes into 8 kHz 16-bit mono samples as they arrive. Raw G.711, and WAV files that are
 * already telephone audio (8 kHz mono µ-law, A-law or 16-bit PCM), are decoded chunk by chunk, so their
 * playing starts with the first bytes; any other WAV the file reader plays (other rates, channels, float,
 * 8/24/32-bit) is kept whole and decoded at the end by the same code as a PlayerEndpoint's file
 * (telephone-audio.ts). A format it cannot play is a MediaFormatError, as early as the header shows it.
 */
export class AudioStreamDecoder {
  private header: Buffer[] = [];
  private headerBytes = 0;
  private mode: 'header' | 'stream' | 'whole' = 'header';
  private law: G711Law | 'pcm16' | undefined;
  /** An odd byte of 16-bit PCM waiting for its pair. */
  private carry: Buffer | undefined;
  /** Bytes of the data chunk still expected (Infinity: a stream whose size the header does not say). */
  private dataLeft = Infinity;
  private whole: Buffer[] = [];

  constructor(
    kind: UploadAudioKind,
    private readonly out: (samples: Int16Array) => void,
  ) {
    if (kind !== 'wav') {
      this.mode = 'stream';
      this.law = kind;
    }
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.mode === 'stream') return this.decode(chunk);
    if (this.mode === 'whole') {
      this.whole.push(chunk);
      return;
    }
    this.header.push(chunk);
    this.headerBytes += chunk.length;
    const head = this.header.length === 1 ? this.header[0]! : Buffer.concat(this.header);
    this.header = [head];
    if (head.length >= 12 && !looksLikeWav(head)) throw new MediaFormatError('not a WAV file (no RIFF/WAVE header) and not sent as raw G.711 (Content-Type audio/basic, audio/PCMU or audio/PCMA)');
    const dataAt = dataChunkBody(head);
    if (dataAt === undefined) {
      if (this.headerBytes > MAX_WAV_HEADER_BYTES) throw new MediaFormatError(`no data chunk within the first ${MAX_WAV_HEADER_BYTES} bytes of the WAV file`);
      return;
    }
    const wav = parseWav(head); // the fmt chunk checked as a file's
    if (wav.sampleRate < MIN_FILE_RATE || wav.sampleRate > MAX_FILE_RATE) {
      throw new MediaFormatError(`sample rate ${wav.sampleRate} Hz is not supported (${MIN_FILE_RATE} to ${MAX_FILE_RATE} Hz)`);
    }
    this.header = [];
    const telephone = wav.channels === 1 && wav.sampleRate === TELEPHONE_RATE;
    const law = wav.format === WAV_FORMAT_MULAW ? 'mulaw' : wav.format === WAV_FORMAT_ALAW ? 'alaw' : wav.format === WAV_FORMAT_PCM && wav.bitsPerSample === 16 ? 'pcm16' : undefined;
    if (telephone && law) {
      this.mode = 'stream';
      this.law = law;
      const size = head.readUInt32LE(dataAt - 4);
      // 0 and 0xffffffff-ish: a WAV written as a stream, whose length was not known when its header was
      this.dataLeft = size === 0 || size >= 0xffff0000 ? Infinity : size;
      this.decode(head.subarray(dataAt));
    } else {
      this.mode = 'whole';
      this.whole.push(head);
    }
  }

  /** The upload is complete: decode what was kept whole; an error when it held no audio. */
  async end(): Promise<{ samples: number }> {
    if (this.mode === 'header') {
      if (this.headerBytes === 0) throw new MediaFormatError('the upload is empty');
      throw new MediaFormatError(this.headerBytes < 12 || !looksLikeWav(Buffer.concat(this.header)) ? 'not a WAV file (no RIFF/WAVE header)' : 'the WAV file ends before its data chunk');
    }
    if (this.mode === 'whole') {
      const all = Buffer.concat(this.whole);
      this.whole = [];
      const samples = await decodeTelephoneAudio(all, 'upload.wav');
      this.out(samples);
      return { samples: samples.length };
    }
    return { samples: this.decodedSamples };
  }

  private decodedSamples = 0;

  private decode(chunk: Buffer): void {
    let bytes = chunk;
    if (this.dataLeft !== Infinity) {
      if (this.dataLeft <= 0) return; // chunks after the data (LIST...) are not audio
      if (bytes.length > this.dataLeft) bytes = bytes.subarray(0, this.dataLeft);
      this.dataLeft -= bytes.length;
    }
    if (this.law === 'pcm16') {
      if (this.carry) {
        bytes = Buffer.concat([this.carry, bytes]);
        this.carry = undefined;
      }
      const whole = bytes.length & ~1;
      if (whole < bytes.length) this.carry = Buffer.from(bytes.subarray(whole));
      if (whole === 0) return;
      const out = new Int16Array(whole / 2);
      for (let i = 0; i < out.length; i++) out[i] = bytes.readInt16LE(i * 2);
      this.emit(out);
      return;
    }
    const out = new Int16Array(bytes.length);
    decodeG711(this.law!, bytes, out, 0);
    this.emit(out);
  }

  private emit(samples: Int16Array): void {
    if (samples.length === 0) return;
    this.decodedSamples += samples.length;
    this.out(samples);
  }
}

/** Where the body of a WAV's `data` chunk starts, once its chunk header is in `head`; undefined before. */
function dataChunkBody(head: Buffer): number | undefined {
  let offset = 12;
  for (let chunks = 0; offset + 8 <= head.length; chunks++) {
    if (chunks >= MAX_CHUNKS) throw new MediaFormatError(`more than ${MAX_CHUNKS} chunks before the audio data`);
    const id = head.toString('latin1', offset, offset + 4);
    const size = head.readUInt32LE(offset + 4);
    if (id === 'data') return offset + 8;
    // a chunk before the data must be whole before the walk goes on (parseWav reads the fmt from it)
    if (size > MAX_WAV_HEADER_BYTES) throw new MediaFormatError(`a ${JSON.stringify(id)} chunk of ${size} bytes before the audio data`);
    offset += 8 + size + (size & 1);
  }
  return undefined;
}
