import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { type AnswerRecord, decodeResponse, type DnsResponse, encodeQuery, type RecordType, RR } from './dns-message';

/** A DNS server to ask: an IP address and port (53 unless said otherwise). */
export interface DnsServer { address: string; port: number }

/** The records of one type a name has (empty: none), and how long that answer may be kept (seconds). */
export interface DnsAnswer {
  records: AnswerRecord[];
  ttl: number;
}

/** The name server could not give an answer: no reply in time, SERVFAIL, REFUSED, a malformed reply. */
export class DnsLookupError extends Error {}

/** How long "no such name" or "no such record" is kept when the server names no SOA: not at all (RFC 2308 §5). */
export const DEFAULT_NEGATIVE_TTL = 0;

/**
 * Asks DNS servers over UDP (over TCP when the answer is truncated), each in turn, each try waiting at most
 * `timeoutMs`; every query has its own socket and a random message id, and only a reply from the server
 * asked, with that id and question, is taken.
 */
export class DnsClient {
  constructor(private readonly servers: readonly DnsServer[], private readonly timeoutMs: number, private readonly rounds = 2) {
    if (servers.length === 0) throw new Error('no DNS server to ask');
  }

  async query(name: string, type: RecordType): Promise<DnsAnswer> {
    let last: Error = new DnsLookupError(`no answer for ${type} ${name}`);
    for (let round = 0; round < this.rounds; round++) {
      for (const server of this.servers) {
        try {
          let res = await this.udp(server, name, type);
          if (res.truncated) res = await this.tcp(server, name, type);
          return answerOf(res, name, type);
        } catch (err) {
          last = err as Error;
        }
      }
    }
    throw last;
  }

  private udp(server: DnsServer, name: string, type: RecordType): Promise<DnsResponse> {
    const id = randomInt(0, 0x10000);
    const query = encodeQuery(id, name, type);
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket(net.isIPv6(server.address) ? 'udp6' : 'udp4');
      const finish = (err: Error | undefined, res?: DnsResponse): void => {
        clearTimeout(timer);
        socket.close();
        if (err) reject(err);
        else resolve(res!);
      };
      const timer = setTimeout(() => finish(new DnsLookupError(`no answer from ${server.address}:${server.port} within ${this.timeoutMs} ms for ${type} ${name}`)), this.timeoutMs);
      socket.on('error', (err) => finish(new DnsLookupError(`DNS server ${server.address}:${server.port}: ${err.message}`)));
      socket.on('message', (msg, rinfo) => {
        if (rinfo.address !== server.address || rinfo.port !== server.port) return;
        let res: DnsResponse;
        try {
          res = decodeResponse(msg);
        } catch {
          return; // not an answer to this query (or garbage): keep waiting
        }
        if (!matches(res, id, name, type)) return;
        finish(undefined, res);
      });
      // a connected socket: an ICMP "port unreachable" (no server there) ends the try at once, as an error
      socket.connect(server.port, server.address, () => socket.send(query));
    });
  }

  private tcp(server: DnsServer, name: string, type: RecordType): Promise<DnsResponse> {
    const id = randomInt(0, 0x10000);
    const query = encodeQuery(id, name, type);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: server.address, port: server.port });
      let buf = Buffer.alloc(0);
      const finish = (err: Error | undefined, res?: DnsResponse): void => {
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve(res!);
      };
      const timer = setTimeout(() => finish(new DnsLookupError(`no TCP answer from ${server.address}:${server.port} within ${this.timeoutMs} ms for ${type} ${name}`)), this.timeoutMs);
      socket.on('error', (err) => finish(new DnsLookupError(`DNS server ${server.address}:${server.port} over TCP: ${err.message}`)));
      socket.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(query.length);
        socket.write(Buffer.concat([len, query]));
      });
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length > 65537) return finish(new DnsLookupError('DNS answer over TCP too long'));
        if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
        try {
          const res = decodeResponse(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          if (!matches(res, id, name, type)) return finish(new DnsLookupError('DNS answer over TCP does not match the query'));
          finish(undefined, res);
        } catch (err) {
          finish(new DnsLookupError((err as Error).message));
        }
      });
      socket.on('end', () => finish(new DnsLookupError(`DNS server ${server.address}:${server.port} closed the TCP connection without an answer`)));
    });
  }
}

function matches(res: DnsResponse, id: number, name: string, type: RecordType): boolean {
  return res.id === id && res.question !== undefined && res.question.name === name.toLowerCase().replace(/\.$/, '')
    && res.question.type === RR[type];
}

/**
 * The records of the asked type (following CNAMEs within the answer), and the TTL of the answer: the
 * smallest TTL of the records used (RFC 2181 §5.2), or for "none" the SOA's negative TTL (RFC 2308).
 */
function answerOf(res: DnsResponse, name: string, type: RecordType): DnsAnswer {
  if (res.rcode !== 0 && res.rcode !== 3) {
    const why = res.rcode === 2 ? 'SERVFAIL' : res.rcode === 5 ? 'REFUSED' : `rcode ${res.rcode}`;
    throw new DnsLookupError(`${type} ${name}: ${why}`);
  }
  let owner = name.toLowerCase().replace(/\.$/, '');
  let ttl = Number.MAX_SAFE_INTEGER;
  for (let hops = 0; hops < 8; hops++) {
    const cname = res.answers.find((r) => r.type === 'CNAME' && r.name === owner);
    if (!cname || cname.type !== 'CNAME') break;
    ttl = Math.min(ttl, cname.ttl);
    owner = cname.target;
  }
  const records = res.answers.filter((r) => r.type === type && r.name === owner);
  if (records.length === 0) return { records, ttl: res.negativeTtl ?? DEFAULT_NEGATIVE_TTL };
  for (const r of records) ttl = Math.min(ttl, r.ttl);
  return { records, ttl };
}
