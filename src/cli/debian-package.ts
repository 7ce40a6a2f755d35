import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';

/** Absolute path of `program` on PATH (or in the usual Debian binary directories), or undefined. */
export function findProgram(program: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  const dirs = [...pathEnv.split(':').filter(Boolean), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    const candidate = `${dir}/${program}`;
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** True when this process may install Debian packages itself (root, apt-get present). */
export function canInstallPackages(): boolean {
  return process.getuid?.() === 0 && findProgram('apt-get') !== undefined;
}

/**
 * Installs Debian packages the way scripts/test.sh installs the test tools
 * (`apt-get update -qq && apt-get install -y -qq …`, non-interactive). Resolves true on success.
 */
export function installDebianPackages(packages: string[], timeoutMs = 600_000): Promise<boolean> {
  return new Promise((resolve) => {
    const script = `apt-get update -qq && apt-get install -y -qq ${packages.join(' ')} >/dev/null`;
    const child = spawn('sh', ['-c', script], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: ['ignore', 'ignore', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}
