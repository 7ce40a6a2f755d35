/**
 * The DNS wire format (RFC 1035 §4), as much of it as SIP target resolution needs: a query for one name
 * and type, and the answers of a response for A, AAAA, CNAME, SRV (RFC 2782) and NAPTR (RFC 3403) with their
 * TTLs, plus the SOA minimum of a negative answer (RFC 2308) for how long "no such record" may be kept.
 */

export const RR = { A: 1, CNAME: 5, SOA: 6, AAAA: 28, SRV: 33, NAPTR: 35 } as const;
export type RecordType = 'A' | 'AAAA' | 'SRV' | 'NAPTR';

export interface SrvData { priority: number; weight: number; port: number; target: string }
export interface NaptrData { order: number; preference: number; flags: string; service: string; regexp: string; replacement: string }

export type AnswerRecord =
  | { name: string; ttl: number; type: 'A' | 'AAAA'; address: string }
  | { name: string; ttl: number; type: 'CNAME'; target: string }
  | { name: string; ttl: number; type: 'SRV'; srv: SrvData }
  | { name: string; ttl: number; type: 'NAPTR'; naptr: NaptrData };

export interface DnsResponse {
  id: number;
  /** 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED... */
  rcode: number;
  truncated: boolean;
  question: { name: string; type: number } | undefined;
  answers: AnswerRecord[];
  /** TTL for a negative answer: min(SOA TTL, SOA minimum) of the authority section, when there is one */
  negativeTtl: number | undefined;
}

export class DnsFormatError extends Error {}

/** A recursive query (RD set) for `name` and `type` with message id `id`. */
export function encodeQuery(id: number, name: string, type: RecordType): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(RR[type], 0);
  tail.writeUInt16BE(1, 2); // IN
  return Buffer.concat([header, encodeName(name), tail]);
}

function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.replace(/\.$/, '').split('.')) {
    if (label === '') continue;
    const b = Buffer.from(label, 'ascii');
    if (b.length > 63) throw new DnsFormatError(`DNS label longer than 63 octets in ${name}`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > 255) throw new DnsFormatError(`DNS name longer than 255 octets: ${name}`);
  return out;
}

/** Parses a response; throws DnsFormatError on anything malformed (a truncated packet, a pointer loop). */
export function decodeResponse(buf: Buffer): DnsResponse {
  if (buf.length < 12) throw new DnsFormatError('DNS message shorter than its header');
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if ((flags & 0x8000) === 0) throw new DnsFormatError('DNS message is not a response');
  const counts = [buf.readUInt16BE(4), buf.readUInt16BE(6), buf.readUInt16BE(8)];
  let off = 12;
  let question: DnsResponse['question'];
  for (let i = 0; i < counts[0]!; i++) {
    const [name, next] = readName(buf, off);
    need(buf, next + 4);
    if (i === 0) question = { name, type: buf.readUInt16BE(next) };
    off = next + 4;
  }
  const answers: AnswerRecord[] = [];
  let negativeTtl: number | undefined;
  for (let section = 1; section <= 2; section++) {
    for (let i = 0; i < counts[section]!; i++) {
      const [name, next] = readName(buf, off);
      need(buf, next + 10);
      const type = buf.readUInt16BE(next);
      const ttl = buf.readUInt32BE(next + 4) & 0x7fffffff;
      const len = buf.readUInt16BE(next + 8);
      const data = next + 10;
      need(buf, data + len);
      off = data + len;
      if (section === 2) {
        if (type === RR.SOA) {
          const [, afterMname] = readName(buf, data);
          const [, afterRname] = readName(buf, afterMname);
          need(buf, afterRname + 20);
          negativeTtl = Math.min(ttl, buf.readUInt32BE(afterRname + 16));
        }
        continue;
      }
      const rr = decodeRecord(buf, name, type, ttl, data, len);
      if (rr) answers.push(rr);
    }
  }
  return { id, rcode: flags & 0x0f, truncated: (flags & 0x0200) !== 0, question, answers, negativeTtl };
}

function decodeRecord(buf: Buffer, name: string, type: number, ttl: number, at: number, len: number): AnswerRecord | undefined {
  switch (type) {
    case RR.A:
      if (len !== 4) throw new DnsFormatError('A record of the wrong length');
      return { name, ttl, type: 'A', address: [...buf.subarray(at, at + 4)].join('.') };
    case RR.AAAA: {
      if (len !== 16) throw new DnsFormatError('AAAA record of the wrong length');
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(at + i).toString(16));
      return { name, ttl, type: 'AAAA', address: compressIPv6(groups) };
    }
    case RR.CNAME:
      return { name, ttl, type: 'CNAME', target: readName(buf, at)[0] };
    case RR.SRV: {
      need(buf, at + 6);
      const [target] = readName(buf, at + 6);
      return { name, ttl, type: 'SRV', srv: { priority: buf.readUInt16BE(at), weight: buf.readUInt16BE(at + 2), port: buf.readUInt16BE(at + 4), target } };
    }
    case RR.NAPTR: {
      need(buf, at + 4);
      let p = at + 4;
      const strings: string[] = [];
      for (let i = 0; i < 3; i++) {
        need(buf, p + 1);
        const l = buf[p]!;
        need(buf, p + 1 + l);
        strings.push(buf.toString('latin1', p + 1, p + 1 + l));
        p += 1 + l;
      }
      const [replacement] = readName(buf, p);
      return { name, ttl, type: 'NAPTR', naptr: { order: buf.readUInt16BE(at), preference: buf.readUInt16BE(at + 2), flags: strings[0]!, service: strings[1]!, regexp: strings[2]!, replacement } };
    }
    default:
      return undefined;
  }
}

/** A (possibly compressed, RFC 1035 §4.1.4) name at `off`: the name, lower-cased, and the offset after it. */
function readName(buf: Buffer, off: number): [string, number] {
  const labels: string[] = [];
  let p = off;
  let end = -1;
  for (let jumps = 0; ; ) {
    need(buf, p + 1);
    const len = buf[p]!;
    if (len === 0) {
      if (end < 0) end = p + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      need(buf, p + 2);
      if (end < 0) end = p + 2;
      if (++jumps > 32) throw new DnsFormatError('DNS name compression loop');
      p = ((len & 0x3f) << 8) | buf[p + 1]!;
      continue;
    }
    if (len > 63) throw new DnsFormatError('bad DNS label length');
    need(buf, p + 1 + len);
    labels.push(buf.toString('latin1', p + 1, p + 1 + len));
    p += 1 + len;
  }
  return [labels.join('.').toLowerCase(), end];
}

function need(buf: Buffer, end: number): void {
  if (end > buf.length) throw new DnsFormatError('DNS message truncated');
}

function compressIPv6(groups: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
