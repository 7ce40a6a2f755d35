import { ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';
import { guarded } from '../../common/process-faults';
import { withParentDeathSignal } from './parent-death-signal';
import { PACKAGE_ROOT } from '../../common/package-root';

/** Any program run as a supervised child. */
export interface ChildSpec {
  /** Names the child in its prefixed output lines, e.g. 'sip' or 'redis'. */
  name: string;
  command: string;
  args: string[];
  /** Added to this process's environment; read again at every (re)start, so it may be updated. */
  env?: Record<string, string>;
  cwd?: string;
  /**
   * Readiness test on each output line (stdout and stderr): returns the child's info once a line
   * says it is ready, undefined otherwise.
   */
  ready: (line: string) => Record<string, unknown> | undefined;
  /** Restart (with back-off) when it dies unexpectedly. Default true. */
  restart?: boolean;
}

/** One ferry part run as a child process: `bin/ferry <name>` with an environment. */
export interface PartSpec {
  name: 'sip' | 'media' | 'gateway';
  env: Record<string, string>;
}

export interface Ready {
  name: string;
  info: Record<string, unknown>;
}

const FERRY_BIN = path.join(PACKAGE_ROOT, 'bin', 'ferry');

/** Children alive right now; SIGKILLed if this process exits with them still running. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackChild(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of liveChildren) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
  }
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

/**
 * Runs one program, waits for its readiness line, restarts it (with back-off) if it dies
 * unexpectedly after it was ready once (a child that fails to start is not restarted: start() rejects), and stops it with SIGTERM (SIGKILL after a grace period). The child cannot outlive
 * this process: it is started through a parent-death signal where available, gets this process's
 * pid in FERRY_PARENT_PID (ferry children watch it), is SIGKILLed if this process exits, and runs in
 * its own session so a terminal's Ctrl-C or hang-up reaches only the supervisor, which stops the
 * children in order. Events: 'ready' (info) after every (re)start, 'exit' (code, signal).
 */
export class SupervisedChild extends EventEmitter {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restarts = 0;
  /** The child has been ready at least once: only then is an exit a crash worth a restart. */
  private everReady = false;
  private restartTimer: NodeJS.Timeout | undefined;
  info: Record<string, unknown> = {};

  constructor(readonly spec: ChildSpec, private readonly out: (line: string) => void) {
    super();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    const c = this.child;
    return !!c && c.exitCode === null && c.signalCode === null;
  }

  start(timeoutMs = 30000): Promise<Record<string, unknown>> {
    this.stopping = false;
    return new Promise((resolve, reject) => {
      const { command, args } = withParentDeathSignal(this.spec.command, this.spec.args);
      const child = spawn(command, args, {
        env: { ...process.env, ...this.spec.env, FERRY_PARENT_PID: String(process.pid) },
        cwd: this.spec.cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      this.child = child;
      trackChild(child);
      const prefix = `[${this.spec.name}] `;
      let ready = false;
      const timer = setTimeout(() => {
        reject(new Error(`${this.spec.name} did not become ready within ${timeoutMs} ms`));
        if (this.running && this.child === child) child.kill('SIGKILL');
      }, timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`${this.spec.name} could not be started: ${err.message}`));
      });
      const onLine = (line: string): void => {
        if (!ready) {
          const info = this.spec.ready(line);
          if (info) {
            ready = true;
            this.everReady = true;
            clearTimeout(timer);
            this.info = info;
            this.restarts = 0;
            this.emit('ready', info);
            resolve(info);
            return;
          }
        }
        this.out(prefix + line);
      };
      readline.createInterface({ input: child.stdout! }).on('line', onLine);
      readline.createInterface({ input: child.stderr! }).on('line', onLine);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.child === child) this.child = undefined;
        reject(new Error(`${this.spec.name} exited (${signal ?? code}) before it was ready`));
        this.emit('exit', code, signal);
        if (this.stopping || this.spec.restart === false) return;
        // a child that never became ready failed to start (a bad setting, a port in use): the rejected
        // start() reports it, and restarting would only repeat the failure
        if (!this.everReady) return;
        const delay = Math.min(10000, 250 * 2 ** this.restarts++);
        this.out(`${prefix}exited unexpectedly (${signal ?? `code ${code}`}); restarting in ${delay} ms`);
        this.restartTimer = setTimeout(
          guarded(`supervisor.restart.${this.spec.name}`, () => {
            this.restartTimer = undefined;
            if (this.stopping) return;
            this.start(timeoutMs).catch((err: Error) => this.out(`${prefix}${err.message}`));
          }),
          delay,
        );
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. No restart follows. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  /** SIGKILL now (a forced stop); no restart follows. */
  kill(): void {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    if (this.running) this.child!.kill('SIGKILL');
  }
}

/** The spec of a ferry part: `node bin/ferry <name>`, ready on its `ferry <name> ready {...}` line. */
/**
 * What `ferry media` needs at process start (bin/ferry-media-memory.js: V8 young generation, glibc malloc
 * tunables), given here so that bin/ferry does not relaunch it; nothing for the other parts.
 */
function partStartSettings(spec: PartSpec): { nodeOptions: string[]; env: Record<string, string> } {
  if (spec.name !== 'media') return { nodeOptions: [], env: {} };
  const memory = require(path.join(PACKAGE_ROOT, 'bin', 'ferry-media-memory.js')) as {
    mediaStartSettings(env: NodeJS.ProcessEnv, execArgv: string[]): { nodeOptions: string[]; env: Record<string, string> };
  };
  return memory.mediaStartSettings({ ...process.env, ...spec.env }, []);
}

export function ferryPartSpec(spec: PartSpec): ChildSpec {
  const marker = `ferry ${spec.name} ready `;
  const settings = partStartSettings(spec);
  return {
    name: spec.name,
    command: process.execPath,
    args: [...settings.nodeOptions, FERRY_BIN, spec.name],
    env: { ...spec.env, ...settings.env },
    ready: (line) => {
      if (!line.startsWith(marker)) return undefined;
      try {
        return JSON.parse(line.slice(marker.length)) as Record<string, unknown>;
      } catch {
        return {};
      }
    },
  };
}

/** A ferry part (sip, media, gateway) as a supervised child. */
export class SupervisedPart extends SupervisedChild {
  constructor(part: PartSpec, out: (line: string) => void) {
    super(ferryPartSpec(part), out);
  }
}
