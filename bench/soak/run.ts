import { writeFile } from 'node:fs/promises';
import { parseSoakArgs } from './soak-options';
import { runSoak } from './run-soak';
import { humanSummary } from './soak-report';

/**
 * `npm run soak -- --calls N --minutes M --seed S [--dead-ms ..] [--kinds mute,hold,...] [--json file]`:
 * the chaos soak (docs/reliability.md). Prints progress, the JSON report (to --json or stdout) and a
 * human summary; exits 1 on any false end, party not told, unexplained set-up failure or leak.
 */
async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const jsonAt = argv.indexOf('--json');
  const jsonFile = jsonAt >= 0 ? argv[jsonAt + 1] : undefined;
  if (jsonAt >= 0) argv.splice(jsonAt, 2);
  const options = parseSoakArgs(argv);
  options.log = (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const report = await runSoak(options);
  const json = JSON.stringify(report, null, 2);
  if (jsonFile) await writeFile(jsonFile, `${json}\n`);
  else process.stdout.write(`${json}\n`);
  process.stdout.write(`\n${humanSummary(report)}\n`);
  process.exit(report.ok ? 0 : 1);
}

main().catch((err: Error) => {
  process.stderr.write(`soak: ${err.message}\n`);
  process.exit(2);
});
