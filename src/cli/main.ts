/**
 * `walletd <command>`: the one command line. `serve` runs the service; the offline commands
 * work on a data directory; `bench` is the load generator.
 */
import { balanceCommand, OFFLINE_HELP, replayCommand, runOffline, snapshotCommand, verifyCommand } from './offline.js';

const HELP = `walletd — event-sourced wallet ledger

Usage: walletd <command> [options]

  serve      run the service (HTTP API v1 + binary protocol); walletd serve --help
  bench      load generator and peer comparison; walletd bench --help
${OFFLINE_HELP}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'serve':
      return (await import('./serve.js')).serveCommand(args);
    case 'bench':
      return (await import('./bench.js')).benchCommand(args);
    case 'verify':
      return runOffline(verifyCommand, args);
    case 'replay':
      return runOffline(replayCommand, args);
    case 'balance':
      return runOffline(balanceCommand, args);
    case 'snapshot':
      return runOffline(snapshotCommand, args);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command '${command}'\n\n${HELP}`);
      return 2;
  }
}

const code = await main(process.argv.slice(2));
// serve keeps running until a signal; every other command ends here.
if (process.argv[2] !== 'serve') process.exit(code);
else if (code !== 0) process.exit(code);
