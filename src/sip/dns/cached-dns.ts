import { DnsCache } from './dns-cache';
import { type DnsAnswer, DnsClient } from './dns-client';
import type { RecordType } from './dns-message';
import { type DnsSettings, systemDnsServers } from './dns-settings';
import { HostsFile } from './hosts-file';

/** DNS as target resolution uses it: cached by TTL, one query in flight per name and type. */
export class CachedDns {
  private readonly client: DnsClient;
  private readonly cache: DnsCache;
  private readonly inFlight = new Map<string, Promise<DnsAnswer>>();
  /** DNS queries sent (cache misses) */
  queries = 0;

  constructor(readonly settings: DnsSettings, now: () => number) {
    this.client = new DnsClient(settings.servers ?? systemDnsServers(), settings.timeoutMs);
    this.cache = new DnsCache(settings.cacheEntries, now);
  }

  /** The hosts file (/etc/hosts), consulted before DNS only when ferry sip uses the system's resolver. */
  get hosts(): ((name: string) => Promise<string[]>) | undefined {
    if (this.settings.servers) return undefined;
    const file = new HostsFile();
    return (name) => file.lookup(name);
  }

  readonly lookup = (name: string, type: RecordType): Promise<DnsAnswer> => {
    const cached = this.cache.get(type, name);
    if (cached) return Promise.resolve(cached);
    const key = `${type} ${name.toLowerCase()}`;
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    this.queries++;
    const p = this.client.query(name, type).then((answer) => {
      this.cache.set(type, name, answer);
      return answer;
    }).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  };
}
