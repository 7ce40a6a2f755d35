/**
 * What the ferry media benches that run on their own (webrtc-setup-cpu.ts, webrtc-call-memory.ts) share: the
 * shape of their command line (--help, --media-env, --out), a ferry media harness that logs into the results
 * directory, the pid of the process that runs ferry media, and how the script ends.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { FerryMediaHarness } from './ferry-media-harness';

/** The options every standalone bench has. */
export interface StandaloneBenchOptions {
  /** extra environment for ferry media */
  mediaEnv: Record<string, string>;
  /** results directory */
  out: string;
}

/** The default results directory of a bench: /tmp/<name>-<time>. */
export function defaultResultsDir(name: string): string {
  return `/tmp/${name}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
}

/**
 * Reads `argv` into `o`: `--help` / `-h` prints `usage` and exits, `--media-env K=V,...` adds to o.mediaEnv,
 * `--out DIR` sets o.out, and every other flag goes to `option`, which returns false for a flag it does not
 * know (an error with the usage). `value()` takes the flag's value, or throws when there is none.
 */
export function parseBenchArgs<O extends StandaloneBenchOptions>(
  argv: readonly string[],
  usage: string,
  o: O,
  option: (flag: string, value: () => string) => boolean,
): O {
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${flag} needs a value\n${usage}`);
      return x;
    };
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    } else if (flag === '--media-env') {
      for (const kv of value().split(',')) {
        const eq = kv.indexOf('=');
        if (eq > 0) o.mediaEnv[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
    } else if (flag === '--out') o.out = value();
    else if (!option(flag, value)) throw new Error(`unknown option ${flag}\n${usage}`);
  }
  return o;
}

/**
 * A ferry media harness (not started yet) whose log and event-loop-lag file go into the results directory
 * `out` (made if missing), at log level warn.
 */
export function resultsDirHarness(out: string, extra: { env: Record<string, string>; profile?: boolean }): FerryMediaHarness {
  mkdirSync(out, { recursive: true });
  return new FerryMediaHarness({
    logFile: path.join(out, 'ferry-media.log'),
    lagFile: path.join(out, 'ferry-media.lag.jsonl'),
    logLevel: 'warn',
    ...extra,
  });
}

/**
 * The process that runs ferry media: the started pid, or its only child when bin/ferry relaunched itself with
 * its memory settings (bin/ferry-media-memory.js; the parent only passes signals on).
 */
export function mediaServerPid(started: number): number {
  let pid = started;
  for (;;) {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    if (children.length !== 1) return pid;
    pid = Number(children[0]);
  }
}

/** Runs a bench's main and exits: 0 when it resolves, 1 with the error on stderr when it throws. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
