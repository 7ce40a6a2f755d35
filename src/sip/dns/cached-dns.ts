import { DnsCache } from './dns-cache';
import { type DnsAnswer, DnsClient } from './dns-client';
import type { RecordType } from './dns-message';
import { type DnsSettings, systemDnsServers } from './dns-settings';
import { HostsFile } from './hosts-file';

/** How long a lookup that got no answer (timeout, SERVFAIL, REFUSED) fails again at once (RFC 2308 §7: at most 5 minutes). */
export const FAILURE_CACHE_MS = 30_000;

/**
 * DNS as target resolution uses it: cached by TTL, one query in flight per name and type; a lookup that
 * got no answer fails at once for FAILURE_CACHE_MS, so a dead DNS server does not make every request wait.
 */
export class CachedDns {
  private readonly client: DnsClient;
  private readonly cache: DnsCache;
  private readonly inFlight = new Map<string, Promise<DnsAnswer>>();
  private readonly failures = new Map<string, { error: Error; until: number }>();
  /** DNS queries sent (cache misses) */
  queries = 0;

  constructor(readonly settings: DnsSettings, private readonly now: () => number) {
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
    const failed = this.failures.get(key);
    if (failed && failed.until > this.now()) return Promise.reject(failed.error);
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    this.queries++;
    const p = this.client.query(name, type).then((answer) => {
      this.failures.delete(key);
      this.cache.set(type, name, answer);
      return answer;
    }, (error: Error) => {
      this.failures.delete(key);
      this.failures.set(key, { error, until: this.now() + FAILURE_CACHE_MS });
      while (this.failures.size > Math.max(1, this.settings.cacheEntries)) this.failures.delete(this.failures.keys().next().value!);
      throw error;
    }).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  };
}
