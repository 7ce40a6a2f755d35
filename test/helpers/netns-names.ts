import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * What the helpers that make network namespaces share (./netns.ts, ./nat-router.ts): running a command
 * inside one, asking whether one exists, deleting one from a process exit hook, and removing the ones an
 * earlier run left behind. Their names carry the pid of the process that made them, so a namespace whose
 * process is gone is known to be stale.
 */

/** Run a command inside namespace `ns` and wait for it; its stdout. */
export async function execInNamespace(ns: string, command: string, args: string[]): Promise<string> {
  return (await run('ip', ['netns', 'exec', ns, command, ...args])).stdout;
}

/** Does a namespace of this name exist (tests assert cleanup)? */
export async function namespaceExists(name: string): Promise<boolean> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout.split('\n').some((line) => line.split(' ')[0] === name);
}

/**
 * Deletes the namespaces whose name `pattern` matches from its start (group 1: the pid of the process
 * that made them) when that process is gone; this process's own are left alone.
 */
export async function removeStaleNamespaces(pattern: RegExp): Promise<void> {
  const { stdout } = await run('ip', ['netns', 'list']);
  for (const line of stdout.split('\n')) {
    const m = pattern.exec(line);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch {
      await run('ip', ['netns', 'del', m[0]]).catch(() => undefined);
    }
  }
}

/** Deletes a namespace synchronously (for process exit hooks); one already gone is fine. */
export function deleteNamespaceSync(name: string): void {
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}
