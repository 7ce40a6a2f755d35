// Memory settings of `ferry media` (docs/media-server.md, "Memory settings"; docs/configuration.md).
//
// Plain CommonJS JavaScript, like ferry-bundle.js: bin/ferry reads it before anything else is loaded.
//
// Two settings must be in place when the process starts, so bin/ferry starts `ferry media` once more with
// them (relaunch: a child process in the same place, its exit code and signals passed through) unless they
// are already there:
// - V8's young generation: `--max-semi-space-size=<FERRY_MEDIA_SEMI_SPACE_MB>` for the main thread (V8 reads
//   it when the heap is set up; v8.setFlagsFromString later has no effect), and the relay workers' young
//   generation limit (src/media/workers/worker-pool.ts). Under a high allocation rate V8 grows a semi-space
//   to 16 MiB (new space 32 MiB + the copy) and keeps it.
// - glibc's malloc: GLIBC_TUNABLES (read by the dynamic loader at exec) with `glibc.malloc.arena_max`, so the
//   threads' native allocations (V8's helper threads, the relay workers) share a few arenas instead of up to
//   eight per core, each keeping its own high-water mark.
// `ferry start` passes both to its media child directly (no relaunch), see src/cli/supervisor.
'use strict';
const os = require('node:os');

/** Semi-space of V8's young generation for ferry media, MiB (V8's own default grows to 16). */
const DEFAULT_SEMI_SPACE_MB = 2;
/** Marks a process started with the settings (no second relaunch). */
const APPLIED_VAR = 'FERRY_MEDIA_MEMORY_APPLIED';

function intFrom(env, name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${raw} must be a whole number >= 0`);
  return n;
}

/** FERRY_MEDIA_SEMI_SPACE_MB (0 = V8's default). */
function semiSpaceMb(env) {
  return intFrom(env, 'FERRY_MEDIA_SEMI_SPACE_MB', DEFAULT_SEMI_SPACE_MB);
}

/** Relay workers' young generation limit, MiB (V8 sizes a young generation at three semi-spaces); undefined = V8's default. */
function workerYoungGenerationMb(env) {
  if (env.FERRY_MEDIA_MEMORY_SETTINGS === '0') return undefined;
  const semi = semiSpaceMb(env);
  return semi > 0 ? 3 * semi : undefined;
}

/** malloc arenas: one per thread that relays (the relay workers, or the main thread) and one more, at least 2. */
function defaultArenaMax(env) {
  const workers = intFrom(env, 'FERRY_MEDIA_WORKERS', Math.min(64, os.availableParallelism()));
  return Math.max(2, workers + 1);
}

/**
 * GLIBC_TUNABLES for ferry media: FERRY_MEDIA_GLIBC_TUNABLES when set ('' = none), else
 * `glibc.malloc.arena_max=<relay threads + 1>`. A GLIBC_TUNABLES or MALLOC_ARENA_MAX already in the
 * environment is left as it is (undefined here).
 */
function glibcTunables(env) {
  if (env.GLIBC_TUNABLES !== undefined || env.MALLOC_ARENA_MAX !== undefined) return undefined;
  if (env.FERRY_MEDIA_GLIBC_TUNABLES !== undefined) return env.FERRY_MEDIA_GLIBC_TUNABLES || undefined;
  return `glibc.malloc.arena_max=${defaultArenaMax(env)}`;
}

/** Whether a V8/Node option is already given (on the command line or in NODE_OPTIONS). */
function hasOption(execArgv, env, name) {
  const given = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)];
  return given.some((a) => `--${a.replace(/^--/, '').split('=')[0].replace(/_/g, '-')}` === name);
}

/**
 * What a `ferry media` process needs at start: Node options and environment variables, both empty when
 * everything is in place or FERRY_MEDIA_MEMORY_SETTINGS=0.
 */
function mediaStartSettings(env, execArgv) {
  if (env.FERRY_MEDIA_MEMORY_SETTINGS === '0' || env[APPLIED_VAR] === '1') return { nodeOptions: [], env: {} };
  const nodeOptions = [];
  const semi = semiSpaceMb(env);
  if (semi > 0 && !hasOption(execArgv, env, '--max-semi-space-size')) nodeOptions.push(`--max-semi-space-size=${semi}`);
  const addEnv = {};
  const tunables = glibcTunables(env);
  if (tunables) addEnv.GLIBC_TUNABLES = tunables;
  if (nodeOptions.length > 0 || Object.keys(addEnv).length > 0) addEnv[APPLIED_VAR] = '1';
  return { nodeOptions, env: addEnv };
}

/** Under a debugger or profiler the process is not relaunched (the tools would attach to the wrong one). */
function underInspector(execArgv, env) {
  return hasOption(execArgv, env, '--inspect') || hasOption(execArgv, env, '--inspect-brk') || hasOption(execArgv, env, '--cpu-prof');
}

const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2'];

/**
 * bin/ferry, for `ferry media`: when settings are missing, runs `ferry media` again as a child with them and
 * returns true (the caller then does nothing else: this process passes signals on, and exits as the child
 * does). The child is in its own process group (a terminal's Ctrl-C reaches it once, through this process)
 * and is started through `setpriv --pdeathsig SIGKILL` where available, so a SIGKILL of this process takes
 * it down too.
 */
function relaunchMediaIfNeeded(script, args) {
  const env = process.env;
  if (underInspector(process.execArgv, env)) return false;
  const settings = mediaStartSettings(env, process.execArgv);
  if (Object.keys(settings.env).length === 0 && settings.nodeOptions.length === 0) return false;
  const { spawn, spawnSync } = require('node:child_process');
  const nodeArgs = [...process.execArgv, ...settings.nodeOptions, script, ...args];
  const childEnv = { ...env, ...settings.env };
  if (env.FERRY_BUNDLE_VERBOSE === '1') {
    process.stderr.write(`ferry media: relaunched with ${[...settings.nodeOptions, ...Object.entries(settings.env).map(([k, v]) => `${k}=${v}`)].join(' ')}\n`);
  }
  const setpriv = spawnSync('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'true'], { stdio: 'ignore', timeout: 5000 }).status === 0;
  const [command, commandArgs] = setpriv ? ['setpriv', ['--pdeathsig', 'SIGKILL', '--', process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
  const child = spawn(command, commandArgs, { env: childEnv, stdio: 'inherit', detached: true });
  const forward = (signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  child.once('error', (err) => {
    process.stderr.write(`ferry: could not start ferry media: ${err.message}\n`);
    process.exit(1);
  });
  child.once('exit', (code, signal) => {
    for (const s of FORWARDED_SIGNALS) process.removeListener(s, forward);
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
  return true;
}

module.exports = { mediaStartSettings, relaunchMediaIfNeeded, workerYoungGenerationMb, semiSpaceMb, DEFAULT_SEMI_SPACE_MB, APPLIED_VAR };
