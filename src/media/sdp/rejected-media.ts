/**
 * Port-0 answers: every m-line of an offer that ferry media does not carry is answered rejected, as
 * Kurento Media Server's SDP agent does and RFC 3264 §6 asks (port 0, the offer's media type and
 * transport, one format from the offer). Text-level and pure, so the answer keeps the offer's m-line
 * order and whatever the WebRTC stack wrote for the one line ferry carries.
 *
 * - `offerMLines(text)` lists the offer's m-lines (type, port, transport, formats, a=mid).
 * - `writeRejectingAnswer(...)` is the whole answer when nothing in the offer is usable (no leg, no port).
 * - `offerForStack(offer, kept)` is the offer as a WebRTC stack should see it: every other line already
 *   at port 0 and out of the BUNDLE group, so the stack builds no transport, transceiver or data channel
 *   for it.
 * - `rejectOtherLines(answer, offer, kept)` rewrites a stack's answer: every line but `kept` in the
 *   rejected form, and `a=group:BUNDLE` naming the kept line's mid only (a rejected line is in no group).
 */
export interface OfferedMLine {
  type: string;
  port: number;
  protocol: string;
  formats: string[];
  mid: string | undefined;
}

/** Caps for hostile input: an offer with more m-lines than this is not answered line by line. */
export const MAX_MLINES = 64;

/** The text split at its m= lines: the session part and one array of lines per m-section. */
interface Sections {
  session: string[];
  media: string[][];
}

function splitSections(text: string): Sections {
  // Split as sdp-transform does (CRLF, LF or a lone CR), so the m-lines counted here are the ones it parses.
  const lines = text.split(/\r\n|\r|\n/).filter((l) => l !== '');
  const out: Sections = { session: [], media: [] };
  for (const line of lines) {
    if (line.startsWith('m=')) out.media.push([line]);
    else if (out.media.length === 0) out.session.push(line);
    else out.media[out.media.length - 1]!.push(line);
  }
  return out;
}

function joinSections(s: Sections): string {
  return [...s.session, ...s.media.flat()].join('\r\n') + '\r\n';
}

function readMLine(section: string[]): OfferedMLine {
  const [type = '', port = '', protocol = '', ...formats] = section[0]!.slice(2).trim().split(/\s+/);
  const midLine = section.find((l) => l.startsWith('a=mid:'));
  return {
    type,
    port: Number(port.split('/')[0]),
    protocol,
    formats,
    mid: midLine === undefined ? undefined : midLine.slice('a=mid:'.length).trim(),
  };
}

/** The offer's m-lines in order. The caller has checked the text is an SDP (v=0, parseable). */
export function offerMLines(text: string): OfferedMLine[] {
  return splitSections(text).media.slice(0, MAX_MLINES + 1).map(readMLine);
}

/** One m-line answered rejected: port 0, the offer's type and transport, its first format, its mid. */
export function rejectedSection(m: OfferedMLine, connection: string | undefined): string[] {
  const lines = [`m=${m.type} 0 ${m.protocol} ${m.formats[0] ?? '0'}`];
  if (connection) lines.push(connection);
  if (m.mid !== undefined) lines.push(`a=mid:${m.mid}`);
  return lines;
}

/** The answer to an offer of which ferry carries nothing: every m-line rejected; no group, no transport. */
export function writeRejectingAnswer(o: { sessionId: string; version: number; address: string; mlines: OfferedMLine[] }): string {
  const ver = o.address.includes(':') ? 'IP6' : 'IP4';
  const lines = ['v=0', `o=- ${o.sessionId} ${o.version} IN ${ver} ${o.address}`, 's=ferry', `c=IN ${ver} ${o.address}`, 't=0 0'];
  for (const m of o.mlines) lines.push(...rejectedSection(m, undefined));
  return lines.join('\r\n') + '\r\n';
}

/** The BUNDLE group line keeping only `mid` (none when the kept line has no mid). */
function bundleOnly(session: string[], mid: string | undefined): string[] {
  const out: string[] = [];
  for (const line of session) {
    if (!/^a=group:BUNDLE(\s|$)/.test(line)) {
      out.push(line);
      continue;
    }
    const mids = line.slice('a=group:BUNDLE'.length).trim().split(/\s+/);
    if (mid !== undefined && mids.includes(mid)) out.push(`a=group:BUNDLE ${mid}`);
  }
  return out;
}

/** The offer with every line but `kept` already rejected (port 0) and out of the BUNDLE group. */
export function offerForStack(offer: string, kept: number): string {
  const s = splitSections(offer);
  const mid = s.media[kept] ? readMLine(s.media[kept]!).mid : undefined;
  s.session = bundleOnly(s.session, mid);
  s.media = s.media.map((section, i) => {
    if (i === kept) return section;
    const m = readMLine(section);
    if (m.port === 0) return section;
    return [`m=${m.type} 0 ${m.protocol} ${m.formats.join(' ') || '0'}`, ...section.slice(1)];
  });
  return joinSections(s);
}

/**
 * A stack's answer with every line but `kept` in the rejected form (from the offer's lines, so its type,
 * transport, format and mid are the offer's whatever the stack wrote) and BUNDLE naming the kept mid only.
 * Lines the stack left out are added, so the answer has exactly the offer's m-lines.
 */
export function rejectOtherLines(answer: string, offer: OfferedMLine[], kept: number): string {
  const s = splitSections(answer);
  const hasSessionConnection = s.session.some((l) => l.startsWith('c='));
  const connection = hasSessionConnection ? undefined : 'c=IN IP4 0.0.0.0';
  s.session = bundleOnly(s.session, offer[kept]?.mid);
  s.media = offer.map((m, i) => (i === kept && s.media[i] ? s.media[i]! : rejectedSection(m, connection)));
  return joinSections(s);
}
