import { spawnSync } from 'node:child_process';

/**
 * Asks the kernel to send a child SIGTERM when its parent dies (SIGKILL of the parent included),
 * by starting it through util-linux `setpriv --pdeathsig SIGTERM` (present on every Debian; setpriv
 * exec()s the command, so the child keeps the pid we spawned). Where setpriv is missing or refuses,
 * the command runs as is and ferry children still notice their parent's death themselves
 * (FERRY_PARENT_PID, src/common/process-runner.ts).
 */
let available: boolean | undefined;

export function parentDeathSignalAvailable(): boolean {
  if (available === undefined) {
    const probe = spawnSync('setpriv', ['--pdeathsig', 'SIGTERM', '--', 'true'], { stdio: 'ignore', timeout: 5000 });
    available = probe.status === 0;
  }
  return available;
}

/** `command args…` wrapped so that it gets SIGTERM when this process dies (when the system allows). */
export function withParentDeathSignal(command: string, args: string[]): { command: string; args: string[] } {
  if (!parentDeathSignalAvailable()) return { command, args };
  return { command: 'setpriv', args: ['--pdeathsig', 'SIGTERM', '--', command, ...args] };
}
