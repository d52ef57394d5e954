import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * How the Node.js process that runs `walletd serve` is started: `npm start`, `walletd bench` and
 * the test and benchmark harnesses start the server with these flags and this environment
 * (package.json's start script is checked against both by a test). Neither can be set from
 * inside the process: V8 sizes its heap, and glibc reads its tunables, when the process starts.
 *
 * --max-semi-space-size=64: a young generation of 64 MiB per semi-space instead of 16. Requests
 * allocate short-lived objects (parsed bodies, results) that survive a group commit's fsync;
 * with small semi-spaces they are copied and promoted, then collected by the slower old-
 * generation collector. Measured with bench:http, batch endpoint: 3.9 -> 3.6 µs of server CPU
 * per transfer (3 rounds each, same run). The young generation may then take 2 × 64 MiB instead of 2 × 16: at most 96 MiB more.
 */
export const SERVE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];

/**
 * GLIBC_TUNABLES=glibc.malloc.hugetlb=1: glibc's malloc asks the kernel for transparent huge
 * pages (madvise MADV_HUGEPAGE) on the memory it maps, which is where the ledger's typed arrays
 * live. A decision reads about seven random cache lines of tables that reach hundreds of MiB;
 * with 4 KiB pages nearly every one of those reads also misses the TLB and walks the page
 * tables, with 2 MiB pages far fewer do. Kernels whose THP mode is `madvise` (the common
 * default, and this project's machines) give huge pages only to memory that asks. Measured
 * with bench:engine (1M accounts, 4M transfers, two alternating rounds): uniform 417,634 and
 * 408,027/s without, 505,119 and 517,766/s with. No effect where THP is `never`, with other C
 * libraries, or off Linux.
 */
const HUGE_PAGES_TUNABLE = 'glibc.malloc.hugetlb=1';

/** `env` with GLIBC_TUNABLES asking for huge pages, keeping any tunables already set. */
export function withServeEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) result[name] = value;
  result['GLIBC_TUNABLES'] = withHugePagesTunable(result['GLIBC_TUNABLES']);
  return result;
}

function withHugePagesTunable(tunables: string | undefined): string {
  if (tunables === undefined || tunables === '') return HUGE_PAGES_TUNABLE;
  const kept = tunables.split(':').filter((tunable) => !tunable.startsWith('glibc.malloc.hugetlb='));
  return [...kept, HUGE_PAGES_TUNABLE].join(':');
}

/** Whether this process was started asking glibc for huge pages (logged at start). */
export function hugePagesRequested(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  return (env['GLIBC_TUNABLES'] ?? '').split(':').includes(HUGE_PAGES_TUNABLE);
}

/**
 * Starts a worker thread, as `new Worker` does, with the process's flags less `--input-type`,
 * which Node refuses for a worker's script file: a process started with
 * `node --input-type=module -e`, as tests do, could otherwise start no worker at all. Every
 * worker of walletd starts here. (The flags are passed only when one had to be left out: Node
 * also refuses V8 flags such as --max-semi-space-size when they are passed explicitly.)
 */
export function newWorker(url: URL, options: WorkerOptions = {}): Worker {
  const isInputType = (flag: string): boolean => flag.startsWith('--input-type');
  const execArgv = process.execArgv.some(isInputType) ? process.execArgv.filter((flag) => !isInputType(flag)) : undefined;
  return new Worker(url, execArgv === undefined ? options : { ...options, execArgv });
}
