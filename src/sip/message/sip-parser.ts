import { SipHeaders } from './sip-headers';
import type { SipMessage } from './sip-message';
import { parseCSeq } from './sip-message';
import { SipParseError } from './sip-parse-error';
import { parseVia } from './via';

const MAX_HEADER_BYTES = 65_536;
const TOKEN = /^[A-Za-z0-9!%*_+`'~.-]+$/;
const SIP_VERSION = /^SIP\/\d{1,3}\.\d{1,3}$/i;
/** RFC 3261 §20.22: Max-Forwards is 1*DIGIT in 0-255 (leading zeros allowed: `0068` is 68). */
const MAX_FORWARDS = /^\d{1,9}$/;

/**
 * Parses one complete SIP message (datagram, WebSocket message, or a frame cut by SipStreamFramer).
 * Throws SipParseError on anything malformed; never throws anything else.
 * `datagram`: when true and Content-Length is absent, the rest of the packet is the body (RFC 3261 §18.3).
 * `lenient`: skip the mandatory-header checks and take the rest of the data as body (messages from
 *   apps arrive framed by the control protocol; the engine completes them and recomputes Content-Length).
 */
export function parseSipMessage(data: Buffer, datagram = true, lenient = false): SipMessage {
  let headEnd = data.indexOf('\r\n\r\n');
  let sepLen = 4;
  if (headEnd < 0) {
    const lf = data.indexOf('\n\n');
    if (lf < 0) {
      // A message with no body may lack the final blank line on datagrams; accept only if it ends in CRLF.
      if (!datagram) throw new SipParseError('no end of headers');
      headEnd = data.length;
      sepLen = 0;
    } else {
      headEnd = lf;
      sepLen = 2;
    }
  }
  if (headEnd > MAX_HEADER_BYTES) throw new SipParseError('headers too large');
  const head = data.toString('utf8', 0, headEnd);
  const lines = head.split(/\r?\n/);
  while (lines.length && lines[0] === '') lines.shift(); // RFC 3261 §7.5: ignore leading CRLFs
  const startLine = lines.shift();
  if (!startLine) throw new SipParseError('empty message');

  let isRequest = false;
  let method: string | undefined;
  let uri = '';
  let version = 'SIP/2.0';
  let badRequestLine: string | undefined;
  let status = 0;
  let reason = '';
  const resp = /^SIP\/2\.0 (\d{3})(?: (.*))?$/.exec(startLine);
  if (resp) {
    status = Number(resp[1]);
    reason = resp[2] ?? '';
    if (status < 100 || status > 699) throw new SipParseError(`bad status code ${status}`);
  } else {
    const parts = startLine.split(' ');
    // any SIP/x.y parses, so a request of another version can be answered 505 (request-validator.ts)
    if (parts.length !== 3 || !SIP_VERSION.test(parts[2]) || !TOKEN.test(parts[0]) || !parts[1]) {
      // a request line with extra or missing spaces (RFC 4475 lwsruri, lwsstart, trws): read the headers
      // anyway so the request can be answered 400; anything else is not a SIP message
      if (!TOKEN.test(parts[0]) || !/ SIP\/\d/i.test(startLine)) throw new SipParseError(`bad start line: ${JSON.stringify(startLine.slice(0, 80))}`);
      badRequestLine = `bad request line: ${JSON.stringify(startLine.slice(0, 80))}`;
    }
    isRequest = true;
    method = parts[0].toUpperCase();
    uri = parts[1] ?? '';
    version = (parts[2] ?? '').toUpperCase();
  }

  const headers = new SipHeaders();
  let current: [string, string] | undefined;
  const flush = (): void => {
    if (current) headers.append(current[0], current[1].trim());
    current = undefined;
  };
  for (const line of lines) {
    if (line === '') continue;
    if (line[0] === ' ' || line[0] === '\t') {
      if (!current) throw new SipParseError('continuation line without header', isRequest, method);
      current[1] += ' ' + line.trim();
      continue;
    }
    flush();
    const colon = line.indexOf(':');
    if (colon <= 0) throw new SipParseError(`bad header line: ${JSON.stringify(line.slice(0, 80))}`, isRequest, method, headers);
    const name = line.slice(0, colon).trim();
    if (!TOKEN.test(name)) throw new SipParseError(`bad header name: ${JSON.stringify(name.slice(0, 40))}`, isRequest, method, headers);
    current = [name, line.slice(colon + 1)];
  }
  flush();

  const fail = (why: string): never => {
    throw new SipParseError(why, isRequest, method, headers);
  };
  if (badRequestLine) fail(badRequestLine);
  if (!lenient) {
    for (const h of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) if (!headers.has(h)) fail(`missing ${h}`);
    const cseq = parseCSeq(headers.get('CSeq'));
    if (!cseq) fail('bad CSeq');
    if (isRequest && cseq!.method !== method) fail('CSeq method does not match request method');
    const topVia = headers.getAll('Via')[0];
    // a request of another SIP version has Vias of that version; it is answered 505, not 400
    if (!topVia || (version === 'SIP/2.0' && !parseVia(topVia))) fail('bad Via');
  }
  const mf = headers.get('Max-Forwards');
  if (mf !== undefined && (!MAX_FORWARDS.test(mf.trim()) || Number(mf.trim()) > 255)) fail('bad Max-Forwards');

  const bodyStart = Math.min(data.length, headEnd + sepLen);
  const clRaw = lenient ? undefined : headers.get('Content-Length');
  let body: Buffer;
  if (clRaw !== undefined) {
    if (!/^\d{1,9}$/.test(clRaw.trim())) fail('bad Content-Length');
    const cl = Number(clRaw.trim());
    if (bodyStart + cl > data.length) fail('body shorter than Content-Length');
    body = ownCopy(data.subarray(bodyStart, bodyStart + cl));
  } else {
    if (!datagram) fail('missing Content-Length on a stream');
    body = ownCopy(data.subarray(bodyStart));
  }
  if (isRequest) return { kind: 'request', method: method!, uri, headers, body, ...(version !== 'SIP/2.0' ? { version } : {}) };
  return { kind: 'response', status, reason, headers, body };
}

/**
 * A copy of `bytes` in a buffer of its own: not a view of the received chunk (a stream read is up to 64 kB)
 * and not a slice of Node's shared 8 kB pool (what `Buffer.from` gives for short data), either of which a
 * message kept by its transaction for up to 32 s would keep alive whole.
 */
function ownCopy(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(out);
  return out;
}
