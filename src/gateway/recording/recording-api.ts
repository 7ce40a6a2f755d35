import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type http from 'node:http';
import { ApiError, badField } from '../api/api-error';
import { RouteTable } from '../api/route-table';
import { CdrStore } from '../cdr/cdr-store';
import { resolveRecordingFile } from './recording-files';
import { interleavedSize, interleaveWavs } from './wav-channels';

const HEADERS = { 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' };

/**
 * `GET /api/recordings/{callId}`: a recorded call's audio, once the call has ended — both parties as one
 * 2-channel WAV (channel 1 the caller, channel 2 the callee), or `?party=caller|callee` for that party's
 * mono WAV as ferry media wrote it. The id is looked up in the CDRs; the file names come from the CDR and
 * are checked to be recording names inside the media files directory (docs/recording.md).
 */
export function addRecordingRoutes(table: RouteTable, deps: { store: () => CdrStore | undefined; mediaFilesDir: string }): RouteTable {
  table.add('GET', '/api/recordings/{callId}', async ({ url, params, res }) => {
    for (const k of url.searchParams.keys()) if (k !== 'party') throw badField(k, 'unknown query parameter (allowed: party)');
    const party = url.searchParams.get('party');
    if (party !== null && party !== 'caller' && party !== 'callee') throw badField('party', "'caller' or 'callee'");
    const store = deps.store();
    if (!store) throw new ApiError(503, 'recordings are not available (the gateway is starting)');
    const cdr = await store.get(params.callId!).catch((err: Error) => {
      throw new ApiError(503, `CDR store unavailable: ${err.message}`);
    });
    if (!cdr?.recording) throw new ApiError(404, 'no recording for this call (unknown call, not recorded, or not ended yet)');
    const caller = resolveRecordingFile(deps.mediaFilesDir, cdr.recording.files.caller);
    const callee = resolveRecordingFile(deps.mediaFilesDir, cdr.recording.files.callee);
    if (!caller || !callee) throw new ApiError(404, 'no recording for this call');
    const exists = async (p: string): Promise<boolean> => stat(p).then((s) => s.isFile(), () => false);
    if (!(await exists(caller)) || !(await exists(callee))) throw new ApiError(404, 'the recording files are not in this gateway\'s FERRY_MEDIA_FILES_DIR');
    const name = `${cdr.callId}${party ? `-${party}` : ''}.wav`;
    if (party) {
      const file = party === 'caller' ? caller : callee;
      const { size } = await stat(file);
      res.writeHead(200, { ...HEADERS, 'Content-Type': 'audio/wav', 'Content-Length': String(size), 'Content-Disposition': `attachment; filename="${name}"` });
      await pipeTo(createReadStream(file), res);
      return;
    }
    let size: number;
    try {
      size = await interleavedSize(caller, callee);
    } catch (err) {
      throw new ApiError(500, `recording unreadable: ${(err as Error).message}`);
    }
    res.writeHead(200, { ...HEADERS, 'Content-Type': 'audio/wav', 'Content-Length': String(size), 'Content-Disposition': `attachment; filename="${name}"` });
    try {
      for await (const chunk of interleaveWavs(caller, callee)) {
        if (!res.write(chunk)) {
          await new Promise<void>((r) => {
            res.once('drain', r);
            res.once('close', r);
          });
        }
        if (res.destroyed) break;
      }
    } catch {
      res.destroy(); // the length was promised: a broken answer rather than a short one
      return;
    }
    res.end();
  });
  return table;
}

function pipeTo(src: NodeJS.ReadableStream, res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    src.on('error', () => {
      res.destroy();
      resolve();
    });
    res.on('close', resolve);
    src.pipe(res);
  });
}
