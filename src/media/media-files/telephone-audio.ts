import { decodeG711 } from './g711';
import { resampleTo, yieldToEventLoop } from './resample';
import {
  looksLikeWav,
  MediaFormatError,
  parseWav,
  WAV_FORMAT_ALAW,
  WAV_FORMAT_FLOAT,
  WAV_FORMAT_MULAW,
  WAV_FORMAT_PCM,
  type WavAudio,
} from './wav-format';

/** The rate everything is played at (G.711). */
export const TELEPHONE_RATE = 8000;
/** Sample rates a WAV file may have; other rates are refused (INVALID_MEDIA). */
export const MIN_FILE_RATE = 8000;
export const MAX_FILE_RATE = 48000;

/** How to read bytes that are not a WAV file: a raw G.711 stream named by its file extension. */
const RAW_EXTENSIONS: ReadonlyMap<string, 'mulaw' | 'alaw'> = new Map([
  ['.ul', 'mulaw'],
  ['.ulaw', 'mulaw'],
  ['.mulaw', 'mulaw'],
  ['.mu', 'mulaw'],
  ['.pcmu', 'mulaw'],
  ['.al', 'alaw'],
  ['.alaw', 'alaw'],
  ['.pcma', 'alaw'],
]);

export const RAW_G711_EXTENSIONS = [...RAW_EXTENSIONS.keys()];

/**
 * Media bytes -> mono 16-bit linear PCM at 8 kHz. A RIFF/WAVE file is recognised by its content
 * (PCM 8/16/24/32-bit, 32-bit float, A-law, µ-law; 1-8 channels mixed down; 8-48 kHz resampled);
 * anything else is read as raw G.711 at 8 kHz when `name` ends in a raw extension (.ul/.ulaw/.pcmu,
 * .al/.alaw/.pcma); otherwise MediaFormatError.
 */
export async function decodeTelephoneAudio(bytes: Buffer, name: string): Promise<Int16Array> {
  if (looksLikeWav(bytes)) return fromWav(parseWav(bytes));
  const dot = name.lastIndexOf('.');
  const law = dot >= 0 ? RAW_EXTENSIONS.get(name.slice(dot).toLowerCase()) : undefined;
  if (!law) throw new MediaFormatError(`not a WAV file, and the name does not end in a raw G.711 extension (${RAW_G711_EXTENSIONS.join(' ')})`);
  if (bytes.length === 0) throw new MediaFormatError('the file is empty');
  const out = new Int16Array(bytes.length);
  decodeG711(law, bytes, out, 0);
  return out;
}

/** Frames converted between two yields to the event loop. */
const FRAMES_PER_SLICE = 32768;

async function fromWav(w: WavAudio): Promise<Int16Array> {
  if (w.sampleRate < MIN_FILE_RATE || w.sampleRate > MAX_FILE_RATE) {
    throw new MediaFormatError(`sample rate ${w.sampleRate} Hz is not supported (${MIN_FILE_RATE} to ${MAX_FILE_RATE} Hz)`);
  }
  if (w.data.length === 0) throw new MediaFormatError('the WAV file holds no samples');
  if ((w.format === WAV_FORMAT_MULAW || w.format === WAV_FORMAT_ALAW) && w.channels === 1 && w.sampleRate === TELEPHONE_RATE) {
    const out = new Int16Array(w.data.length);
    decodeG711(w.format === WAV_FORMAT_MULAW ? 'mulaw' : 'alaw', w.data, out, 0);
    return out;
  }
  const mono = await monoFloat(w);
  const atRate = await resampleTo(mono, w.sampleRate, TELEPHONE_RATE);
  const out = new Int16Array(atRate.length);
  for (let i = 0; i < atRate.length; i++) {
    const v = Math.round(atRate[i]! * 32768);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

/** Samples as floats in [-1, 1), channels averaged. */
async function monoFloat(w: WavAudio): Promise<Float32Array> {
  const bytesPer = w.bitsPerSample / 8;
  const frames = w.data.length / (bytesPer * w.channels);
  const out = new Float32Array(frames);
  const read = sampleReader(w);
  const linear = w.format === WAV_FORMAT_MULAW || w.format === WAV_FORMAT_ALAW ? g711Floats(w) : undefined;
  for (let f = 0; f < frames; f++) {
    if (f % FRAMES_PER_SLICE === FRAMES_PER_SLICE - 1) await yieldToEventLoop();
    let acc = 0;
    for (let c = 0; c < w.channels; c++) {
      const i = f * w.channels + c;
      acc += linear ? linear[i]! : read(i * bytesPer);
    }
    out[f] = acc / w.channels;
  }
  return out;
}

function g711Floats(w: WavAudio): Float32Array {
  const pcm = new Int16Array(w.data.length);
  decodeG711(w.format === WAV_FORMAT_MULAW ? 'mulaw' : 'alaw', w.data, pcm, 0);
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i]! / 32768;
  return out;
}

function sampleReader(w: WavAudio): (offset: number) => number {
  const d = w.data;
  if (w.format === WAV_FORMAT_FLOAT) return (o) => Math.max(-1, Math.min(1, d.readFloatLE(o)));
  if (w.format !== WAV_FORMAT_PCM) return () => 0;
  switch (w.bitsPerSample) {
    case 8:
      return (o) => (d[o]! - 128) / 128;
    case 16:
      return (o) => d.readInt16LE(o) / 32768;
    case 24:
      return (o) => d.readIntLE(o, 3) / 8388608;
    default:
      return (o) => d.readInt32LE(o) / 2147483648;
  }
}
