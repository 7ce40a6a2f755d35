import type http from 'node:http';
import { ApiError } from './api-error';

/** the largest JSON body an API request may carry */
export const MAX_BODY_BYTES = 16 * 1024;
/** how long a client may take to send its body */
export const BODY_TIMEOUT_MS = 5000;

/**
 * Reads a request's JSON body: `application/json` only (415 otherwise), at most MAX_BODY_BYTES
 * (413; reading stops at once), within BODY_TIMEOUT_MS (408), an object at the top (400). An empty
 * body is `{}` (the options of /hold, /resume are all optional).
 */
export async function readJsonBody(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) throw new ApiError(413, `the body is larger than ${MAX_BODY_BYTES} bytes`, {}, { Connection: 'close' });
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      // answered, then closed by `Connection: close` (destroying the request here would close the socket
      // before the answer is written); reading stops
      reject(new ApiError(408, `the body did not arrive within ${BODY_TIMEOUT_MS} ms`, {}, { Connection: 'close' }));
      req.pause();
    }, BODY_TIMEOUT_MS);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        clearTimeout(timer);
        reject(new ApiError(413, `the body is larger than ${MAX_BODY_BYTES} bytes`, {}, { Connection: 'close' }));
        req.pause();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  if (text.trim() === '') return {};
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new ApiError(415, 'the body must be JSON (Content-Type: application/json)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, `body: not valid JSON (${(err as Error).message.slice(0, 100)})`, { field: 'body' });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ApiError(400, 'body: must be a JSON object', { field: 'body' });
  return parsed as Record<string, unknown>;
}
