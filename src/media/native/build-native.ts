import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { PACKAGE_ROOT, srcPath } from '../../common/package-root';

/**
 * Builds ferry media's native relay addon (src/media/native/*.c, docs/native-relay.md) with the system C
 * compiler against Node's own headers, into
 * node_modules/.cache/ferry-native/<hash of the sources, Node's ABI and the architecture>/ferry_native.node
 * (FERRY_NATIVE_CACHE_DIR/<hash>/... when that is set),
 * synchronously, on first use (a few seconds); later uses find it there. The addon links against nothing:
 * Node exports libuv's and OpenSSL's symbols to it. Throws NativeBuildError (one line naming what is
 * missing) when it cannot be built.
 */

export class NativeBuildError extends Error {
  override readonly name = 'NativeBuildError';
}

/** The C sources stay in the package's src/ (also when ferry runs from its start-up bundle). */
const SOURCE_DIR = srcPath('media', 'native');

/** Node's C headers (node_api.h, uv.h, openssl/). */
export function nodeIncludeDir(): string {
  return path.join(path.dirname(process.execPath), '..', 'include', 'node');
}

function sources(): string[] {
  return readdirSync(SOURCE_DIR)
    .filter((f) => f.endsWith('.c') || f.endsWith('.h'))
    .sort();
}

/**
 * The directory the built addons are kept in: FERRY_NATIVE_CACHE_DIR when set (an absolute path; a
 * read-only install, or a test that must not find the checkout's build), else node_modules/.cache/ferry-native.
 */
export function nativeCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.FERRY_NATIVE_CACHE_DIR;
  if (dir === undefined || dir === '') return path.join(PACKAGE_ROOT, 'node_modules', '.cache', 'ferry-native');
  if (!path.isAbsolute(dir)) throw new NativeBuildError(`FERRY_NATIVE_CACHE_DIR=${JSON.stringify(dir)} must be an absolute path`);
  return dir;
}

/** Where the addon for the current sources and this Node lives (whether built or not); `cacheRoot` for tests. */
export function nativeAddonPath(cacheRoot = nativeCacheRoot()): string {
  const h = createHash('sha256');
  for (const f of sources()) {
    h.update(f);
    h.update(readFileSync(path.join(SOURCE_DIR, f)));
  }
  h.update(`${process.versions.modules}/${process.arch}/${process.platform}`);
  const dir = path.join(cacheRoot, h.digest('hex').slice(0, 16));
  return path.join(dir, 'ferry_native.node');
}

/**
 * The path of a built addon for the current sources: built now when missing. Throws NativeBuildError.
 * `cc` (default $CC, else cc) and `cacheRoot` are for tests.
 */
export function buildNative(options: { cc?: string; cacheRoot?: string } = {}): string {
  const out = nativeAddonPath(options.cacheRoot);
  if (existsSync(out)) return out;
  if (process.platform !== 'linux') throw new NativeBuildError(`the native relay needs Linux (recvmmsg, epoll); this is ${process.platform}`);
  const include = nodeIncludeDir();
  if (!existsSync(path.join(include, 'node_api.h')) || !existsSync(path.join(include, 'uv.h'))) {
    throw new NativeBuildError(`cannot build the native relay: Node's C headers are missing (no node_api.h / uv.h in ${include})`);
  }
  const cc = options.cc ?? process.env.CC ?? 'cc';
  const cFiles = sources()
    .filter((f) => f.endsWith('.c'))
    .map((f) => path.join(SOURCE_DIR, f));
  const dir = path.dirname(out);
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.${threadId}.tmp`; // threads of one process may build at once
  try {
    execFileSync(cc, ['-O2', '-std=gnu11', '-Wall', '-shared', '-fPIC', '-fvisibility=hidden', `-I${include}`, '-o', tmp, ...cFiles], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 120_000,
    });
  } catch (err) {
    rmSync(tmp, { force: true });
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new NativeBuildError(`cannot build the native relay: no C compiler (${cc} not found; install gcc)`);
    const firstError = (e.stderr?.toString() ?? '').split('\n').find((l) => /error/i.test(l)) ?? e.message;
    throw new NativeBuildError(`cannot build the native relay with ${cc}: ${firstError.trim()}`);
  }
  renameSync(tmp, out); // atomic: a concurrent process sees the whole file or none
  return out;
}
