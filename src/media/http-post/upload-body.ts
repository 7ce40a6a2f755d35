import { RAW_G711_EXTENSIONS } from '../media-files/telephone-audio';
import { MediaFormatError } from '../media-files/wav-format';
import { AudioStreamDecoder, type UploadAudioKind } from './audio-stream-decoder';
import { MultipartError, MultipartFileReader, multipartBoundary } from './multipart-file';

/** Why an upload is refused: the HTTP status and a message for the client (and the Error event). */
export class UploadRefused extends Error {
  constructor(
    readonly status: 400 | 415,
    message: string,
  ) {
    super(message);
    this.name = 'UploadRefused';
  }
}

const WAV_TYPES = new Set(['audio/wav', 'audio/x-wav', 'audio/wave', 'audio/vnd.wave', 'application/octet-stream', '']);
const MULAW_TYPES = new Set(['audio/basic', 'audio/pcmu', 'audio/x-mulaw', 'audio/mulaw', 'audio/x-ulaw', 'audio/ulaw']);
const ALAW_TYPES = new Set(['audio/pcma', 'audio/x-alaw', 'audio/alaw']);

export const ACCEPTED_UPLOAD_TYPES = 'audio/wav (PCM, float, µ-law or A-law), audio/basic or audio/PCMU (raw µ-law, 8 kHz), audio/PCMA (raw A-law, 8 kHz), multipart/form-data with such a file';

/**
 * What a Content-Type (a multipart part's included) says the bytes are, or UploadRefused 415. A WAV is
 * recognised by its header whatever its type says among the WAV and generic types; raw G.711 must be
 * said (its bytes look like anything): audio/basic, audio/PCMU, audio/PCMA and their x- names, with no
 * `rate` but 8000. `filename`: a multipart part's, whose raw G.711 extension (.ul, .al...) also counts.
 */
export function uploadAudioKind(contentType: string | undefined, filename?: string): UploadAudioKind {
  const [type = '', ...params] = (contentType ?? '').split(';');
  const t = type.trim().toLowerCase();
  const rate = params.map((p) => /^\s*rate\s*=\s*"?(\d+)"?\s*$/i.exec(p)?.[1]).find((r) => r !== undefined);
  if (rate !== undefined && rate !== '8000' && (MULAW_TYPES.has(t) || ALAW_TYPES.has(t))) {
    throw new UploadRefused(415, `raw G.711 at ${rate} Hz is not supported (8000 Hz only)`);
  }
  if (MULAW_TYPES.has(t)) return 'mulaw';
  if (ALAW_TYPES.has(t)) return 'alaw';
  if (filename !== undefined && (t === 'application/octet-stream' || t === '')) {
    const dot = filename.lastIndexOf('.');
    const ext = dot >= 0 ? filename.slice(dot).toLowerCase() : '';
    if (RAW_G711_EXTENSIONS.includes(ext)) return ['.al', '.alaw', '.pcma'].includes(ext) ? 'alaw' : 'mulaw';
  }
  if (WAV_TYPES.has(t)) return 'wav';
  throw new UploadRefused(415, `Content-Type ${JSON.stringify(t)} is not audio ferry media plays (${ACCEPTED_UPLOAD_TYPES})`);
}

/**
 * One POST's body as it streams in: a multipart/form-data body is unwrapped to its file part, the
 * audio decoded (audio-stream-decoder.ts) and handed to `out` as 8 kHz samples. Every failure is an
 * UploadRefused (415 for audio it cannot play, 400 for a malformed multipart body); nothing else throws.
 */
export class UploadBody {
  private decoder: AudioStreamDecoder | undefined;
  private readonly multipart: MultipartFileReader | undefined;
  private failed: UploadRefused | undefined;

  constructor(contentType: string | undefined, private readonly out: (samples: Int16Array) => void) {
    const t = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
    if (t === 'multipart/form-data') {
      const boundary = multipartBoundary(contentType!);
      if (!boundary) throw new UploadRefused(400, 'multipart/form-data without a boundary parameter');
      this.multipart = new MultipartFileReader(
        boundary,
        (part) => {
          this.decoder = new AudioStreamDecoder(uploadAudioKind(part.contentType, part.filename), out);
        },
        (chunk) => this.decoder!.push(chunk),
      );
    } else {
      this.decoder = new AudioStreamDecoder(uploadAudioKind(contentType), out);
    }
  }

  push(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    try {
      if (this.multipart) this.multipart.push(chunk);
      else this.decoder!.push(chunk);
    } catch (err) {
      throw (this.failed = refusal(err));
    }
  }

  /** The body is complete: the samples decoded from it in all. */
  async end(): Promise<{ samples: number }> {
    if (this.failed) throw this.failed;
    try {
      this.multipart?.end();
      return await this.decoder!.end();
    } catch (err) {
      throw (this.failed = refusal(err));
    }
  }
}

function refusal(err: unknown): UploadRefused {
  if (err instanceof UploadRefused) return err;
  if (err instanceof MultipartError) return new UploadRefused(400, err.message);
  if (err instanceof MediaFormatError) return new UploadRefused(415, err.message);
  return new UploadRefused(415, 'the upload could not be read as audio');
}
