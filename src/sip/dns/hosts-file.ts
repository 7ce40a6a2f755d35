import { readFile, stat } from 'node:fs/promises';
import net from 'node:net';

/**
 * The system's hosts file (/etc/hosts) as ferry sip's target resolution reads it when it uses the system's
 * resolver: a name listed there is the address listed (as getaddrinfo would find it first), without NAPTR,
 * SRV or DNS. Read again when its modification time changes; a missing or unreadable file lists nothing.
 */
export class HostsFile {
  private names = new Map<string, string[]>();
  private mtimeMs = -1;

  constructor(private readonly file = '/etc/hosts') {}

  async lookup(name: string): Promise<string[]> {
    await this.refresh();
    return this.names.get(name.toLowerCase().replace(/\.$/, '')) ?? [];
  }

  private async refresh(): Promise<void> {
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(this.file)).mtimeMs;
    } catch {
      this.names = new Map();
      this.mtimeMs = -1;
      return;
    }
    if (mtimeMs === this.mtimeMs) return;
    const text = await readFile(this.file, 'utf8').catch(() => '');
    this.names = parseHosts(text);
    this.mtimeMs = mtimeMs;
  }
}

/** `address name [aliases...]` lines, `#` comments: name -> addresses in file order. */
export function parseHosts(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const [address, ...names] = raw.replace(/#.*/, '').trim().split(/\s+/);
    if (!address || !net.isIP(address.replace(/%.*$/, '')) || address.includes('%')) continue;
    for (const n of names) {
      const key = n.toLowerCase().replace(/\.$/, '');
      const list = out.get(key) ?? [];
      if (!list.includes(address)) list.push(address);
      out.set(key, list);
    }
  }
  return out;
}
