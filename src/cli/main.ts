/**
 * Entry point of the `ferry` command. Each subcommand lives in its own module and is loaded lazily,
 * so `ferry media` never loads the SIP engine or the gateway (docs/architecture.md, "One wall").
 */
import { PART_HELP, wantsHelp } from './part-help';

type Command = { describe: string; load: () => Promise<{ run(args: string[]): Promise<void> }> };

const commands: Record<string, Command> = {
  media: { describe: 'Kurento-protocol media server (ws://127.0.0.1:8888/kurento)', load: async () => require('./media-command') },
  sip: { describe: 'SIP engine speaking drachtio-server\'s control protocol (127.0.0.1:5060, :9022)', load: async () => require('./sip-command') },
  gateway: { describe: 'the B2BUA app (drachtio-srf + kurento-client + Redis), HTTP on 127.0.0.1:3000', load: async () => require('./gateway-command') },
  start: { describe: 'run sip, media and gateway as supervised child processes', load: async () => require('./start-command') },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ferry ${name.padEnd(8)} ${c.describe}`);
  return `usage:\n${lines.join('\n')}\n\nferry <command> --help describes one command and its main settings.\n` +
    'FERRY_BUNDLE=0 runs the TypeScript sources through tsx instead of the cached start-up bundle.\n';
}

export function main(argv: string[]): void {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    process.exitCode = name ? 0 : 2;
    return;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`ferry: unknown command "${name}"\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  if (wantsHelp(rest)) {
    process.stdout.write(PART_HELP[name] ?? `usage: ferry ${name}\n  ${command.describe}\n`);
    process.exitCode = 0;
    return;
  }
  command
    .load()
    .then((m) => m.run(rest))
    .catch((err: unknown) => {
      process.stderr.write(`ferry ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
