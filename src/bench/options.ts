/**
 * `walletd bench` options: parsed and validated in one place, with the help text beside them.
 */
import { BATCH_RECORDS_MAX } from '../core/transfer-record.js';
import { TXN_TABLE_ENTRIES_MAX } from '../core/txn-table.js';
import { POSTGRES_CLIENTS_DEFAULT, POSTGRES_CLIENTS_MAX } from './peers/postgres-ledger.js';
import { ACCOUNTS_MAX } from '../core/ledger-state.js';
import { DISTRIBUTIONS, TRANSFER_NUMBER_MAX, type Distribution } from './workload.js';

export type BenchOptions = Readonly<{
  /** host:port of a running server's binary protocol; undefined: start one. */
  target: { host: string; port: number } | undefined;
  token: string | undefined;
  accounts: number;
  transfers: number | undefined;
  durationSeconds: number | undefined;
  batchSize: number;
  connections: number;
  framesInFlightPerConnection: number;
  /** Run one after the other, each on a fresh server (and fresh peer schemas), in this order. */
  distributions: readonly Distribution[];
  zipfExponent: number;
  durable: boolean;
  /** Passed to the server the bench starts (--expected-transactions), to size its id table. */
  expectedTransactions: number | undefined;
  seed: number;
  peers: boolean;
  /** Run only the peers (no walletd): their own figures, no ratios. */
  peersOnly: boolean;
  peerSeconds: number;
  postgresUrl: string;
  postgresClients: number;
  redis: { host: string; port: number };
  resultsDir: string;
}>;

const BENCH_DEFAULTS = {
  accounts: 100_000,
  transfers: 2_000_000,
  batchSize: BATCH_RECORDS_MAX,
  connections: 2,
  framesInFlightPerConnection: 4,
  zipfExponent: 1,
  seed: 1,
  peerSeconds: 20,
  resultsDir: 'results',
} as const;

const CONNECTIONS_MAX = 64;
const FRAMES_IN_FLIGHT_MAX = 64;
const DURATION_SECONDS_MAX = 24 * 3600;

export const BENCH_HELP = `Usage: walletd bench [options]

Load generator for walletd's binary protocol, in its own process. Without --target it starts
'walletd serve' on a fresh temporary data directory (fsync on, as in production) and stops it
afterwards. Prints progress while running; at the end transfers/s, batch latency percentiles,
server CPU and RSS, and a check that every transfer applied exactly once. Writes
<results>/<timestamp>/result.json and chart.svg.

  --target HOST:PORT      a running server's protocol port (admin token: --token or WALLET_ADMIN_TOKEN)
  --token TOKEN           admin token for --target
  --accounts N            accounts opened and funded before the run (default ${BENCH_DEFAULTS.accounts})
  --transfers N           stop after N transfers (default ${BENCH_DEFAULTS.transfers} when --duration is not given)
  --duration S            stop after S seconds
  --batch-size N          records per frame, 1..${BATCH_RECORDS_MAX} (default ${BENCH_DEFAULTS.batchSize})
  --connections N         client connections (default ${BENCH_DEFAULTS.connections})
  --pipeline N            frames in flight per connection (default ${BENCH_DEFAULTS.framesInFlightPerConnection})
  --distribution D[,D]    uniform | zipf | hot (hot: every transfer debits one account), or a list
                          run one after the other in one report, e.g. uniform,hot (default uniform)
  --zipf-exponent S       zipf exponent (default ${BENCH_DEFAULTS.zipfExponent})
  --no-durable            server without fsync; peers with synchronous_commit=off and Redis without AOF
  --expected-transactions N  size the started server's transaction-id table up front (default with
                          --transfers: transfers + accounts; with --duration: not set, the table grows)
  --seed N                workload seed (default ${BENCH_DEFAULTS.seed})
  --peers                 run the same workload against the PostgreSQL ledger and the Redis wallet too
  --peers-only            run only the peers (no walletd), e.g. to measure them alone
  --peer-seconds S        each peer runs the same transfer sequence for at most S seconds (default ${BENCH_DEFAULTS.peerSeconds})
  --pg-url URL            PostgreSQL for --peers (default WALLETD_BENCH_PG_URL or postgres://postgres@127.0.0.1:5432/test)
  --pg-clients N          PostgreSQL connections, one transfer each at a time (default ${POSTGRES_CLIENTS_DEFAULT})
  --redis HOST:PORT       Redis for --peers --no-durable (default 127.0.0.1:6379); durable runs start a private
                          redis-server with appendfsync always
  --results DIR           results folder (default ${BENCH_DEFAULTS.resultsDir})
  --help                  this text
`;

export class BenchUsageError extends Error {}

type Raw = Map<string, string | true>;

const VALUE_FLAGS = new Set([
  'target', 'token', 'accounts', 'transfers', 'duration', 'batch-size', 'connections', 'pipeline', 'distribution',
  'zipf-exponent', 'expected-transactions', 'seed', 'peer-seconds', 'pg-url', 'pg-clients', 'redis', 'results',
]);
const SWITCHES = new Set(['no-durable', 'peers', 'peers-only', 'help']);

export function parseBenchArgs(args: readonly string[], env: NodeJS.ProcessEnv): BenchOptions | 'help' {
  const raw = readFlags(args);
  if (raw.has('help')) return 'help';
  const transfersGiven = raw.has('transfers');
  const durationGiven = raw.has('duration');
  const options: BenchOptions = {
    target: raw.has('target') ? hostPort(text(raw, 'target'), 'target') : undefined,
    token: optionalText(raw, 'token') ?? env['WALLET_ADMIN_TOKEN'],
    accounts: integer(raw, 'accounts', BENCH_DEFAULTS.accounts, 2, ACCOUNTS_MAX),
    transfers: transfersGiven || !durationGiven ? integer(raw, 'transfers', BENCH_DEFAULTS.transfers, 1, TRANSFER_NUMBER_MAX) : undefined,
    durationSeconds: durationGiven ? decimal(raw, 'duration', 0.1, DURATION_SECONDS_MAX) : undefined,
    batchSize: integer(raw, 'batch-size', BENCH_DEFAULTS.batchSize, 1, BATCH_RECORDS_MAX),
    connections: integer(raw, 'connections', BENCH_DEFAULTS.connections, 1, CONNECTIONS_MAX),
    framesInFlightPerConnection: integer(raw, 'pipeline', BENCH_DEFAULTS.framesInFlightPerConnection, 1, FRAMES_IN_FLIGHT_MAX),
    distributions: distributionList(optionalText(raw, 'distribution') ?? 'uniform'),
    zipfExponent: raw.has('zipf-exponent') ? decimal(raw, 'zipf-exponent', 0.01, 10) : BENCH_DEFAULTS.zipfExponent,
    durable: !raw.has('no-durable'),
    expectedTransactions: undefined,
    seed: integer(raw, 'seed', BENCH_DEFAULTS.seed, 0, Number.MAX_SAFE_INTEGER),
    peers: raw.has('peers') || raw.has('peers-only'),
    peersOnly: raw.has('peers-only'),
    peerSeconds: raw.has('peer-seconds') ? decimal(raw, 'peer-seconds', 0.1, DURATION_SECONDS_MAX) : BENCH_DEFAULTS.peerSeconds,
    postgresUrl: optionalText(raw, 'pg-url') ?? env['WALLETD_BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
    postgresClients: integer(raw, 'pg-clients', POSTGRES_CLIENTS_DEFAULT, 1, POSTGRES_CLIENTS_MAX),
    redis: hostPort(optionalText(raw, 'redis') ?? '127.0.0.1:6379', 'redis'),
    resultsDir: optionalText(raw, 'results') ?? BENCH_DEFAULTS.resultsDir,
  };
  const transfers = options.transfers;
  // Ids the server will remember: every transfer and one deposit per account.
  const expectedDefault = transfers === undefined ? undefined : Math.min(transfers + options.accounts, TXN_TABLE_ENTRIES_MAX);
  const expectedTransactions = raw.has('expected-transactions')
    ? integer(raw, 'expected-transactions', 0, 0, TXN_TABLE_ENTRIES_MAX)
    : expectedDefault;
  if (options.target !== undefined && options.token === undefined) {
    throw new BenchUsageError('--target needs the admin token: --token or WALLET_ADMIN_TOKEN');
  }
  if (options.peersOnly && options.target !== undefined) throw new BenchUsageError('--peers-only runs no walletd: drop --target');
  if (options.target !== undefined && raw.has('no-durable')) {
    throw new BenchUsageError('--no-durable applies to a server the bench starts; a --target runs as it was started');
  }
  return { ...options, expectedTransactions };
}

/**
 * What to tell the user before a run whose figures the setup will lower: a server the bench
 * starts for a timed run cannot know how many ids to size its table for, so it grows the table
 * during the measured part (each growth holds a second array and copies every entry).
 */
export function benchNotices(options: BenchOptions): string[] {
  const startsServer = options.target === undefined && !options.peersOnly;
  if (!startsServer || options.expectedTransactions !== undefined) return [];
  return [
    'note: --duration without --expected-transactions: the server sizes its transaction-id table as it goes, ' +
      'and its growths during the run lower the figures; pass --expected-transactions N (about transfers/s × seconds + accounts)',
  ];
}

function readFlags(args: readonly string[]): Raw {
  const raw: Raw = new Map();
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] ?? '';
    if (!arg.startsWith('--')) throw new BenchUsageError(`unexpected argument '${arg}'`);
    const equals = arg.indexOf('=');
    const name = arg.slice(2, equals < 0 ? undefined : equals);
    if (SWITCHES.has(name) && equals < 0) {
      raw.set(name, true);
      continue;
    }
    if (!VALUE_FLAGS.has(name)) throw new BenchUsageError(`unknown option '--${name}'`);
    const value = equals < 0 ? args[++index] : arg.slice(equals + 1);
    if (value === undefined || value === '') throw new BenchUsageError(`option '--${name}' needs a value`);
    if (raw.has(name)) throw new BenchUsageError(`option '--${name}' given twice`);
    raw.set(name, value);
  }
  return raw;
}

function optionalText(raw: Raw, name: string): string | undefined {
  const value = raw.get(name);
  return typeof value === 'string' ? value : undefined;
}

function text(raw: Raw, name: string): string {
  const value = optionalText(raw, name);
  if (value === undefined) throw new BenchUsageError(`option '--${name}' needs a value`);
  return value;
}

/** Integers may be written with _ or , separators: 1_000_000. */
function integer(raw: Raw, name: string, fallback: number, min: number, max: number): number {
  const value = optionalText(raw, name);
  if (value === undefined) return fallback;
  const cleaned = value.replace(/[_,]/g, '');
  if (!/^[0-9]+$/.test(cleaned)) throw new BenchUsageError(`--${name} must be a whole number, got '${value}'`);
  const parsed = Number(cleaned);
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) throw new BenchUsageError(`--${name} must be between ${min} and ${max}`);
  return parsed;
}

function decimal(raw: Raw, name: string, min: number, max: number): number {
  const value = text(raw, name);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value)) throw new BenchUsageError(`--${name} must be a number, got '${value}'`);
  const parsed = Number(value);
  if (parsed < min || parsed > max) throw new BenchUsageError(`--${name} must be between ${min} and ${max}`);
  return parsed;
}

function distributionList(value: string): Distribution[] {
  const list = value.split(',').map((name) => {
    const found = DISTRIBUTIONS.find((d) => d === name);
    if (found === undefined) throw new BenchUsageError(`--distribution must be one or more of ${DISTRIBUTIONS.join(', ')} separated by commas, got '${value}'`);
    return found;
  });
  if (new Set(list).size !== list.length) throw new BenchUsageError(`--distribution names a distribution twice: '${value}'`);
  return list;
}

function hostPort(value: string, name: string): { host: string; port: number } {
  const match = /^(.+):([0-9]{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (match === null || port < 1 || port > 65535) throw new BenchUsageError(`--${name} must be HOST:PORT, got '${value}'`);
  return { host: (match[1] ?? '').replace(/^\[(.*)\]$/, '$1'), port };
}
