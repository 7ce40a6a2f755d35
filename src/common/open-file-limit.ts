import { readFileSync } from 'node:fs';

/**
 * This process's soft limit on open files (`ulimit -n`, systemd's LimitNOFILE=), from /proc/self/limits;
 * undefined where it cannot be read (not Linux) or is unlimited. `text` is for tests.
 */
export function openFileLimit(text?: string): number | undefined {
  let limits = text;
  if (limits === undefined) {
    try {
      limits = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\S+)/m.exec(limits);
  if (!m || m[1] === 'unlimited') return undefined;
  const n = Number(m[1]);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** descriptors a part needs besides its capped connections: listeners, UDP sockets, connections it opens, files, DNS */
export const FD_HEADROOM = 256;

/**
 * The one warning line a part prints at start when its connection cap does not fit under its open-file limit:
 * a stranger opening connections would then use up the descriptors (accept fails, new sockets and files fail)
 * before the cap refuses anyone. Undefined when it fits or the limit is unknown.
 */
export function openFileLimitWarning(part: string, capVariable: string, cap: number, limit: number | undefined): string | undefined {
  if (limit === undefined || cap + FD_HEADROOM <= limit) return undefined;
  return `${part}: WARNING: ${capVariable}=${cap} connections (plus about ${FD_HEADROOM} other descriptors) do not fit under this process's ` +
    `open-file limit of ${limit}: connections could use up the descriptors before the cap refuses any; raise the limit ` +
    `(ulimit -n, systemd LimitNOFILE=) or lower ${capVariable}`;
}
