/**
 * A process that supervises one non-ferry program (`sh -c 'echo up; exec sleep 300'`) with
 * src/cli/supervisor/child-process-supervisor.ts and prints `child <pid>` once it is ready —
 * for the test that SIGKILLs this host and expects the program to die with it.
 */
import { SupervisedChild } from '../../src/cli/supervisor/child-process-supervisor';

const sleeper = new SupervisedChild(
  { name: 'sleeper', command: 'sh', args: ['-c', 'echo up; exec sleep 300'], ready: (l) => (l === 'up' ? {} : undefined), restart: false },
  (line) => process.stderr.write(`${line}\n`),
);
sleeper.start(10_000).then(
  () => process.stdout.write(`child ${sleeper.pid}\n`),
  (err: Error) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  },
);
setInterval(() => undefined, 60_000);
