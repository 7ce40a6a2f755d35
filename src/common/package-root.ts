import path from 'node:path';

/**
 * Where ferry's files are, whether it runs from its TypeScript sources (through tsx) or from the start-up
 * bundle bin/ferry builds (docs/architecture.md, "Process start-up"). In a bundle `__dirname` is the
 * bundle's directory (a cache directory), so the bundle build defines both constants below; from the
 * sources they are undefined and this file's own place decides.
 */
declare const FERRY_BUNDLE_PACKAGE_ROOT: string | undefined;
declare const FERRY_BUNDLE_BUILT: boolean | undefined;

/** The package root (the directory holding package.json, bin/ and src/). */
export const PACKAGE_ROOT: string =
  typeof FERRY_BUNDLE_PACKAGE_ROOT === 'string' ? FERRY_BUNDLE_PACKAGE_ROOT : path.join(__dirname, '..', '..');

/** True in the start-up bundle (its modules are plain JS next to each other: main.js, relay-worker.js). */
export const RUNNING_BUNDLED: boolean = typeof FERRY_BUNDLE_BUILT === 'boolean' && FERRY_BUNDLE_BUILT;

/** A path inside the package's sources (static assets read at run time), e.g. srcPath('gateway', 'http', 'webphone'). */
export function srcPath(...parts: string[]): string {
  return path.join(PACKAGE_ROOT, 'src', ...parts);
}
