import path from 'node:path';

/** a call id the gateway made (randomUUID): the only kind of name a recording file is made from */
const CALL_ID = /^[A-Za-z0-9-]{1,64}$/;

/**
 * Where a call's two mono recordings go, relative to the media files directory (ferry media's
 * FERRY_MEDIA_FILES_DIR): `recordings/<YYYY-MM-DD>/<callId>-caller.wav` and `...-callee.wav`, by the
 * UTC day the recording started.
 */
export function recordingFiles(callId: string, startedAt: number): { caller: string; callee: string } {
  if (!CALL_ID.test(callId)) throw new Error('recording: unexpected call id format');
  const day = new Date(startedAt).toISOString().slice(0, 10);
  return { caller: `recordings/${day}/${callId}-caller.wav`, callee: `recordings/${day}/${callId}-callee.wav` };
}

/**
 * The absolute path of a recording file named in a CDR, or undefined when the name does not have the
 * shape recordingFiles() gives or would leave the directory (a CDR is data: checked, never trusted).
 */
export function resolveRecordingFile(filesDir: string, relative: string): string | undefined {
  if (!/^recordings\/\d{4}-\d{2}-\d{2}\/[A-Za-z0-9-]{1,64}-(caller|callee)\.wav$/.test(relative)) return undefined;
  const root = path.resolve(filesDir);
  const full = path.resolve(root, relative);
  return full.startsWith(root + path.sep) ? full : undefined;
}
