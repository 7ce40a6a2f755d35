// The start-up bundle cache of bin/ferry (docs/architecture.md, "Process start-up").
//
// Plain CommonJS JavaScript (the package is "type": "commonjs"): it runs before anything can compile
// TypeScript, and it must stay cheap, because every ferry process (and every restart of a part under
// `ferry start`) passes through it.
//
// A key is computed from the source tree (path, size and mtime of every .ts/.js/.json file under src/, plus
// tsconfig.json and this file), esbuild's and Node's versions, the package root and the bundle options.
// `<cache>/<key>/main.js` (with relay-worker.js next to it) is run when it exists; otherwise it is built
// with esbuild into a temporary directory inside the cache and renamed into place: a directory rename is
// atomic, so no process ever runs a half-written bundle, and when several processes build at once the
// first rename wins and the others use the winner's. The newest few keys are kept (a run touches its key).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

/** Bump when the bundle's shape changes (options below, the layout of the key directory). */
const LAYOUT = 1;
/** Keys kept besides the one in use (most recently used first). */
const KEEP_KEYS = 4;
/** A temporary build directory older than this is an abandoned build (a killed process) and is removed. */
const STALE_TMP_MS = 10 * 60 * 1000;

function bundleOptions(root) {
  return {
    entryPoints: {
      main: path.join(root, 'src', 'cli', 'main.ts'),
      'relay-worker': path.join(root, 'src', 'media', 'workers', 'relay-worker.ts'),
    },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'silent',
    absWorkingDir: root,
    // src/common/package-root.ts: where the package is, and that this is the bundle
    define: { FERRY_BUNDLE_PACKAGE_ROOT: JSON.stringify(root), FERRY_BUNDLE_BUILT: 'true' },
    // packages are external: they are required from the package root wherever the cache directory is.
    // "use strict" first: esbuild's own directive comes after the banner, where it no longer is one.
    banner: { js: `'use strict';\nrequire = require('node:module').createRequire(${JSON.stringify(path.join(root, 'package.json'))});` },
  };
}

/** What esbuild may bundle; other files under src/ (the webphone page, ...) are read at run time, not bundled. */
const BUNDLED_EXT = /\.(ts|tsx|mts|cts|js|cjs|mjs|json)$/;

/** Every bundled file under dir (path relative to root, size, mtime), in a stable order. */
function listTree(root, dir, out) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listTree(root, p, out);
    else if (e.isFile() && BUNDLED_EXT.test(e.name)) {
      const st = fs.statSync(p);
      out.push(`${path.relative(root, p)}\0${st.size}\0${st.mtimeMs}`);
    }
  }
}

function cacheKey(root, esbuildVersion) {
  const parts = [`layout ${LAYOUT}`, `root ${root}`, `node ${process.version}`, `esbuild ${esbuildVersion}`];
  const opts = bundleOptions(root);
  parts.push(JSON.stringify(opts));
  for (const f of [path.join(root, 'tsconfig.json'), __filename]) {
    try {
      const st = fs.statSync(f);
      parts.push(`${f}\0${st.size}\0${st.mtimeMs}`);
    } catch {
      parts.push(`${f}\0missing`);
    }
  }
  listTree(root, path.join(root, 'src'), parts);
  return crypto.createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 24);
}

/** esbuild's version from its package.json (cheaper than loading esbuild itself when the bundle exists). */
function esbuildVersion(root) {
  const req = require('node:module').createRequire(path.join(root, 'package.json'));
  return JSON.parse(fs.readFileSync(req.resolve('esbuild/package.json'), 'utf8')).version;
}

function build(root, cacheDir, keyDir) {
  const req = require('node:module').createRequire(path.join(root, 'package.json'));
  const esbuild = req('esbuild');
  const tmp = path.join(cacheDir, `.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  fs.mkdirSync(tmp);
  try {
    esbuild.buildSync({ ...bundleOptions(root), outdir: tmp });
    try {
      fs.renameSync(tmp, keyDir);
    } catch (err) {
      // another process renamed its build into place first: use that one
      if (!fs.existsSync(path.join(keyDir, 'main.js'))) throw err;
      fs.rmSync(tmp, { recursive: true, force: true });
      return 'raced';
    }
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return 'built';
}

/**
 * A running ferry process marks the bundle it runs (in-use/<pid>): a long-lived `ferry media` restarts a
 * crashed relay worker from relay-worker.js next to its main.js, so that bundle must outlive any number of
 * newer builds. Markers of processes that are gone are removed on the way.
 */
function markInUse(keyDir) {
  try {
    const dir = path.join(keyDir, 'in-use');
    fs.mkdirSync(dir, { recursive: true });
    const marker = path.join(dir, String(process.pid));
    fs.writeFileSync(marker, '');
    process.once('exit', () => {
      try {
        fs.unlinkSync(marker);
      } catch {
        /* already gone */
      }
    });
  } catch {
    /* a read-only cache: nothing prunes it either */
  }
}

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err && err.code === 'EPERM';
  }
}

function inUse(keyDir) {
  const dir = path.join(keyDir, 'in-use');
  let used = false;
  let names = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return false;
  }
  for (const name of names) {
    const pid = Number(name);
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) used = true;
    else fs.rmSync(path.join(dir, name), { force: true });
  }
  return used;
}

/** Remove keys beyond the newest KEEP_KEYS (by last use) that no running process marks, and abandoned temporary builds. Best effort. */
function prune(cacheDir, keep) {
  try {
    const now = Date.now();
    const keys = [];
    for (const name of fs.readdirSync(cacheDir)) {
      const p = path.join(cacheDir, name);
      let st;
      try {
        st = fs.statSync(p);
      } catch {
        continue;
      }
      if (!st.isDirectory()) continue;
      if (name.startsWith('.tmp-')) {
        if (now - st.mtimeMs > STALE_TMP_MS) fs.rmSync(p, { recursive: true, force: true });
      } else if (/^[0-9a-f]{24}$/.test(name) && name !== keep) {
        keys.push({ p, t: st.mtimeMs });
      }
    }
    keys.sort((a, b) => b.t - a.t);
    for (const k of keys.slice(KEEP_KEYS)) if (!inUse(k.p)) fs.rmSync(k.p, { recursive: true, force: true });
  } catch {
    /* pruning is housekeeping: a failure here never stops ferry */
  }
}

/**
 * The bundle's main.js to run, or undefined when ferry should run its sources through tsx
 * (FERRY_BUNDLE=0, or the cache could not be used: then one line on stderr says why).
 * FERRY_BUNDLE_CACHE_DIR overrides the cache directory (default node_modules/.cache/ferry);
 * FERRY_BUNDLE_VERBOSE=1 says on stderr which way this process runs.
 */
function bundledMain(root, env = process.env) {
  const verbose = env.FERRY_BUNDLE_VERBOSE === '1';
  if (env.FERRY_BUNDLE === '0') {
    if (verbose) process.stderr.write('ferry: FERRY_BUNDLE=0: running the TypeScript sources through tsx\n');
    return undefined;
  }
  const cacheDir = path.resolve(env.FERRY_BUNDLE_CACHE_DIR || path.join(root, 'node_modules', '.cache', 'ferry'));
  let key;
  try {
    key = cacheKey(root, esbuildVersion(root));
    const keyDir = path.join(cacheDir, key);
    const main = path.join(keyDir, 'main.js');
    if (fs.existsSync(main)) {
      try {
        const now = new Date();
        fs.utimesSync(keyDir, now, now); // last use, for pruning
      } catch {
        /* a read-only cache still serves its bundles */
      }
      markInUse(keyDir);
      if (verbose) process.stderr.write(`ferry: running start-up bundle ${main} (cached)\n`);
      return main;
    }
    const t0 = process.hrtime.bigint();
    fs.mkdirSync(cacheDir, { recursive: true });
    const how = build(root, cacheDir, keyDir);
    markInUse(keyDir);
    prune(cacheDir, key);
    if (verbose) {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      process.stderr.write(`ferry: running start-up bundle ${main} (${how} in ${ms.toFixed(0)} ms)\n`);
    }
    return main;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    process.stderr.write(`ferry: start-up bundle not used (${why}); running the TypeScript sources through tsx\n`);
    return undefined;
  }
}

module.exports = { bundledMain, cacheKey, bundleOptions, prune };
