import type http from 'node:http';
import type { Logger } from '../../common/logger';
import { LogThrottle } from '../../common/log-throttle';
import { HTTP_POST_OPERATION, type UploadStepResult } from '../objects/http-post-endpoint';
import { HTTP_POST_PATH } from './http-post-settings';

/** The part of the media registry the route needs: a live object by id (MediaSet.lookup). */
export interface UploadTargets {
  lookup(id: string): { type: string; invoke(operation: string, params: Record<string, unknown>): Promise<unknown> } | undefined;
}

const NOT_FOUND = 'not found\n';

/**
 * POST /ferry-http-post/<id>.<secret>: an upload to an HttpPostEndpoint (src/media/objects/http-post-endpoint.ts),
 * here or in a relay worker. The body is streamed to the endpoint chunk by chunk, each chunk read only
 * once the endpoint took the previous one, so nothing piles up here; at most `maxBytes` (413 beyond,
 * said at once by a Content-Length), and a body that pauses longer than the endpoint's disconnection
 * timeout is given up (the connection is closed). An unknown or released endpoint, a wrong secret, a
 * malformed path: the same 404 with nothing in it. Returns false when the path is not an upload's.
 */
export function createHttpPostRoute(targets: UploadTargets, maxBytes: number, logger: Logger): (req: http.IncomingMessage, res: http.ServerResponse, path: string) => boolean {
  const refusals = new LogThrottle(10_000);
  const answer = (res: http.ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void => {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', connection: 'close', ...extra });
    res.end(text.endsWith('\n') ? text : `${text}\n`);
  };
  return (req, res, path) => {
    if (!path.startsWith(HTTP_POST_PATH)) return false;
    const name = path.slice(HTTP_POST_PATH.length);
    const m = /^([A-Za-z0-9_-]{1,400})\.([A-Za-z0-9_-]{43})$/.exec(name);
    const id = m ? Buffer.from(m[1]!, 'base64url').toString('utf8') : undefined;
    const target = id !== undefined ? targets.lookup(id) : undefined;
    if (!m || !target || target.type !== 'HttpPostEndpoint') {
      answer(res, 404, NOT_FOUND);
      return true;
    }
    if (req.method !== 'POST') {
      answer(res, 405, 'an upload URL takes POST', { allow: 'POST' });
      return true;
    }
    const token = Buffer.from(m[2]!, 'base64url');
    const step = async (params: Record<string, unknown>): Promise<UploadStepResult> => {
      try {
        return (await target.invoke(HTTP_POST_OPERATION, { token, ...params })) as UploadStepResult;
      } catch {
        return { status: 404 }; // released meanwhile
      }
    };
    const refuse = (status: number, text: string, reason: string): void => {
      const logged = refusals.admit(reason);
      if (logged) logger.warn(`http post refused: ${reason}`, { reason, status, remote: req.socket.remoteAddress, suppressed: logged.suppressed });
      answer(res, status, text);
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      // the endpoint is not told: the body is refused before any of it is read
      refuse(413, `the upload is larger than ${maxBytes} bytes (FERRY_MEDIA_HTTP_POST_MAX_BYTES)`, 'too-large');
      return true;
    }
    void (async () => {
      const opened = await step({ step: 'open', contentType: req.headers['content-type'], maxBytes });
      if (opened.status !== 100) {
        if (opened.status === 404) answer(res, 404, NOT_FOUND);
        else refuse(opened.status, opened.message ?? 'refused', `status-${opened.status}`);
        return;
      }
      const session = opened.session;
      let idle: NodeJS.Timeout | undefined;
      let stalled = false;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => {
          stalled = true;
          req.destroy();
        }, opened.idleMs ?? 2000);
        idle.unref();
      };
      let total = 0;
      let result: UploadStepResult | undefined;
      try {
        arm();
        for (let chunk = await nextChunk(req); chunk !== null; chunk = await nextChunk(req)) {
          arm();
          total += chunk.length;
          if (total > maxBytes) {
            result = { status: 413, message: `the upload is larger than ${maxBytes} bytes (FERRY_MEDIA_HTTP_POST_MAX_BYTES)` };
            break;
          }
          const r = await step({ step: 'data', session, bytes: chunk });
          if (r.status !== 100) {
            result = r;
            break;
          }
        }
      } catch {
        // the client went away, or it paused too long (destroyed above)
      } finally {
        clearTimeout(idle);
      }
      const complete = result === undefined && req.complete && !stalled;
      if (result === undefined || result.status === 413) {
        const ended = await step({ step: 'end', session, complete });
        if (result === undefined) result = ended;
      }
      if (result.status === 200) {
        answer(res, 200, result.message ?? 'ok');
        return;
      }
      if (result.status === 404) answer(res, 404, NOT_FOUND);
      else if (stalled) refuse(408, 'the upload paused longer than the endpoint waits for data', 'stalled');
      else if (!req.complete && result.status === 400) res.destroy(); // cut off by the client: nobody to answer
      else refuse(result.status, result.message ?? 'refused', result.status === 413 ? 'too-large' : `status-${result.status}`);
      // the rest of a refused body is not read: the connection goes once the answer is out
      if (!req.complete) {
        if (res.writableFinished || res.destroyed) req.destroy();
        else res.once('finish', () => req.destroy());
      }
    })().catch((err: unknown) => {
      logger.error('http post upload failed', { error: err instanceof Error ? err.message : String(err) });
      answer(res, 500, 'upload failed');
    });
    return true;
  };
}

/**
 * The next chunk of a request body, null at its end; rejects when the request is closed before its end.
 * The body is read one chunk at a time (never faster than the endpoint takes it), and stopping early
 * leaves the connection open for the answer.
 */
function nextChunk(req: http.IncomingMessage): Promise<Buffer | null> {
  const chunk = req.read() as Buffer | null;
  if (chunk !== null) return Promise.resolve(chunk);
  if (req.readableEnded) return Promise.resolve(null);
  if (req.destroyed) return Promise.reject(new Error('the request was closed'));
  return new Promise((resolve, reject) => {
    const done = (): void => {
      req.off('readable', onReadable);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off('error', onClose);
    };
    const onReadable = (): void => {
      const c = req.read() as Buffer | null;
      if (c === null) return; // the end is announced next
      done();
      resolve(c);
    };
    const onEnd = (): void => {
      done();
      resolve(null);
    };
    const onClose = (): void => {
      done();
      if (req.readableEnded) resolve(null);
      else reject(new Error('the request was closed before its end'));
    };
    req.on('readable', onReadable);
    req.on('end', onEnd);
    req.on('close', onClose);
    req.on('error', onClose);
  });
}
