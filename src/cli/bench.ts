/**
 * `walletd bench`: the load generator (src/bench/). Exit code 0 when every target passed its
 * exactly-once check, 1 when a check failed or the run could not complete, 2 on a usage error.
 */
import { runBench } from '../bench/bench.js';
import { BENCH_HELP, BenchUsageError, parseBenchArgs } from '../bench/options.js';

export async function benchCommand(args: string[]): Promise<number> {
  let options: ReturnType<typeof parseBenchArgs>;
  try {
    options = parseBenchArgs(args, process.env);
  } catch (error) {
    if (!(error instanceof BenchUsageError)) throw error;
    process.stderr.write(`walletd bench: ${error.message}\nRun 'walletd bench --help' for the options.\n`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  const progress = progressWriter();
  try {
    const passed = await runBench(options, ['walletd', 'bench', ...args].join(' '), {
      print: (line) => {
        progress.end();
        process.stdout.write(`${line}\n`);
      },
      progress: progress.write,
    });
    if (!passed) process.stderr.write('walletd bench: a check FAILED (see above)\n');
    return passed ? 0 : 1;
  } catch (error) {
    progress.end();
    process.stderr.write(`walletd bench: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

/** On a terminal each progress line overwrites the last; in a log each is its own line. */
function progressWriter(): { write: (line: string) => void; end: () => void } {
  const terminal = process.stderr.isTTY === true;
  let open = false;
  return {
    write: (line) => {
      if (terminal) {
        process.stderr.write(`\r${line}\x1b[K`);
        open = true;
      } else {
        process.stderr.write(`${line}\n`);
      }
    },
    end: () => {
      if (open) process.stderr.write('\n');
      open = false;
    },
  };
}
