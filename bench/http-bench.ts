/**
 * HTTP API benchmark: `npm run bench:http`.
 *
 * Starts a real `walletd serve` process on a fresh temporary data directory with production
 * durability (fsync on, every answer after its fsync), opens and funds accounts over HTTP, then
 * measures from this process over real sockets:
 *   1. single-transfer requests (POST /v1/wallet/balance_transfer) at 64 concurrent
 *      connections: requests/s and latency percentiles (HdrHistogram, microseconds);
 *   2. the batch endpoint (POST /v1/wallet/balance_transfers, 8190 transfers a request):
 *      transfers/s and request latency.
 * Every request uses a fresh transaction_id; only 200 answers with "success" count.
 *
 * Options: --seconds N (per workload, default 10), --warmup-seconds N (2), --connections N (64),
 * --batch-connections N (4), --batch-size N (8190), --accounts N (1000), --compare-coalesce
 * (also runs singles with --no-coalesce), --server-arg ARG (repeatable, passed to serve),
 * --server-node-arg ARG (repeatable, passed to node: --server-node-arg=--cpu-prof profiles the
 * server), --workloads single,batch (which to run; both by default).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { LatencyRecorder, type LatencySummary } from '../src/bench/latency.js';
import { sampleProcess } from '../src/bench/process-stats.js';
import { BATCH_RECORDS_MAX } from '../src/core/transfer-record.js';
import { WalletServer, openAccount } from '../test/support/http-server.js';
import { withUsage } from './usage.js';

type Options = Readonly<{
  seconds: number;
  warmupSeconds: number;
  connections: number;
  batchConnections: number;
  batchSize: number;
  accounts: number;
  compareCoalesce: boolean;
  serverArgs: string[];
  serverNodeArgs: string[];
  workloads: ReadonlySet<'single' | 'batch'>;
}>;

type Result = Readonly<{
  workload: string;
  connections: number;
  seconds: number;
  requests: number;
  transfers: number;
  failures: number;
  latency: LatencySummary;
  /** Server process CPU (user + system) over the measured window; NaN where /proc is missing. */
  serverCpuMs: number;
}>;

const TARGET_SINGLE_REQUESTS_PER_SECOND = 15_000;
const TARGET_SINGLE_P99_MS = 10;
const TARGET_BATCH_TRANSFERS_PER_SECOND = 300_000;
const FUNDING = '1000000000.00';

const USAGE = `Usage: npm run bench:http -- [options]

  --seconds N              seconds per workload (default 10)
  --warmup-seconds N       warm-up before each workload (default 2)
  --connections N          connections for single transfers (default 64)
  --batch-connections N    connections for the batch endpoint (default 4)
  --batch-size N           transfers per batch request (default ${BATCH_RECORDS_MAX})
  --accounts N             accounts opened and funded first (default 1000)
  --compare-coalesce       also run single transfers with the server's --no-coalesce
  --server-arg ARG         passed to walletd serve (repeatable)
  --server-node-arg ARG    passed to the server's node (repeatable), e.g. --server-node-arg=--cpu-prof
  --workloads LIST         single,batch (default both)`;

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      'warmup-seconds': { type: 'string', default: '2' },
      connections: { type: 'string', default: '64' },
      'batch-connections': { type: 'string', default: '4' },
      'batch-size': { type: 'string', default: String(BATCH_RECORDS_MAX) },
      accounts: { type: 'string', default: '1000' },
      'compare-coalesce': { type: 'boolean', default: false },
      'server-arg': { type: 'string', multiple: true, default: [] },
      'server-node-arg': { type: 'string', multiple: true, default: [] },
      workloads: { type: 'string', default: 'single,batch' },
    },
  });
  const number = (name: keyof typeof values): number => {
    const value = Number(values[name]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
    return value;
  };
  /** Connections, batch size and accounts count things: 2.5 would build a 2.5-item array (RangeError) or name account bench-1.5. */
  const integer = (name: keyof typeof values): number => {
    const value = number(name);
    if (!Number.isSafeInteger(value)) throw new Error(`--${name} must be a whole number`);
    return value;
  };
  return {
    seconds: number('seconds'),
    warmupSeconds: nonNegative(Number(values['warmup-seconds']), '--warmup-seconds'),
    connections: integer('connections'),
    batchConnections: integer('batch-connections'),
    batchSize: Math.min(BATCH_RECORDS_MAX, integer('batch-size')),
    accounts: atLeastTwo(integer('accounts'), '--accounts'),
    compareCoalesce: values['compare-coalesce'] === true,
    serverArgs: values['server-arg'] as string[],
    serverNodeArgs: values['server-node-arg'] as string[],
    workloads: workloadsOf(values.workloads),
  };
}

function workloadsOf(list: string): ReadonlySet<'single' | 'batch'> {
  const names = list.split(',').map((name) => name.trim());
  const workloads = new Set<'single' | 'batch'>();
  for (const name of names) {
    if (name !== 'single' && name !== 'batch') throw new Error(`--workloads: unknown workload "${name}" (single, batch)`);
    workloads.add(name);
  }
  if (workloads.size === 0) throw new Error('--workloads needs at least one of single, batch');
  return workloads;
}

function nonNegative(value: number, flag: string): number {
  if (!Number.isFinite(value) || value < 0) throw new Error(`${flag} must be a number ≥ 0`);
  return value;
}

/** A transfer needs two distinct accounts. */
function atLeastTwo(value: number, flag: string): number {
  if (value < 2) throw new Error(`${flag} must be at least 2`);
  return value;
}

/** Ids and bodies are built as strings: the client must stay cheaper than the server it measures. */
class TransferSource {
  private counter = 0;
  constructor(
    private readonly runId: string,
    private readonly accounts: number,
  ) {}

  item(): string {
    const index = this.counter++;
    const from = index % this.accounts;
    const to = (from + 1 + (index % (this.accounts - 1))) % this.accounts;
    return `{"transaction_id":"${this.runId}-${index}","from_account":"bench-${from}","to_account":"bench-${to}","amount":"0.01","currency":"USD"}`;
  }

  batch(size: number): string {
    const items: string[] = new Array<string>(size);
    for (let i = 0; i < size; i++) items[i] = this.item();
    return `{"transfers":[${items.join(',')}]}`;
  }
}

/**
 * Runs `connections` closed loops for warm-up plus `seconds`; only requests that start and end
 * inside the measured window are counted, so warm-up and drain do not blur the figures.
 */
async function runLoops(
  pool: Pool,
  server: WalletServer,
  connections: number,
  options: Options,
  request: () => { path: string; body: string; transfers: number },
  countSuccesses: (status: number, text: string, expected: number) => number,
): Promise<Omit<Result, 'workload' | 'connections'>> {
  const latency = new LatencyRecorder();
  const startMs = performance.now();
  const measureFromMs = startMs + options.warmupSeconds * 1000;
  const measureToMs = measureFromMs + options.seconds * 1000;
  let requests = 0;
  let transfers = 0;
  let failures = 0;
  const headers = { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' };
  let cpuAtStartMs = NaN;
  let cpuAtEndMs = NaN;
  const pid = server.child.pid ?? 0;
  const cpuStart = setTimeout(() => (cpuAtStartMs = processCpuMs(pid)), measureFromMs - startMs);
  const cpuEnd = setTimeout(() => (cpuAtEndMs = processCpuMs(pid)), measureToMs - startMs);
  const loop = async (): Promise<void> => {
    while (performance.now() < measureToMs) {
      const next = request();
      const sentMs = performance.now();
      const response = await pool.request({ method: 'POST', path: next.path, headers, body: next.body });
      const text = await response.body.text();
      const doneMs = performance.now();
      if (sentMs < measureFromMs || doneMs > measureToMs) continue;
      const succeeded = countSuccesses(response.statusCode, text, next.transfers);
      requests++;
      transfers += succeeded;
      if (succeeded < next.transfers) failures++;
      latency.recordUs((doneMs - sentMs) * 1000);
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  clearTimeout(cpuStart);
  clearTimeout(cpuEnd);
  return { seconds: options.seconds, requests, transfers, failures, latency: latency.summary(), serverCpuMs: cpuAtEndMs - cpuAtStartMs };
}

/** CPU time (user + system) a process has used; NaN where /proc is missing. */
function processCpuMs(pid: number): number {
  const sample = sampleProcess(pid);
  return sample === undefined ? NaN : sample.cpuSeconds * 1000;
}

async function measureSingles(server: WalletServer, options: Options, source: TransferSource, label: string): Promise<Result> {
  const run = await withPool(server, options.connections, (pool) =>
    runLoops(
      pool,
      server,
      options.connections,
      options,
      () => ({ path: '/v1/wallet/balance_transfer', body: source.item(), transfers: 1 }),
      (status) => (status === 200 ? 1 : 0),
    ),
  );
  return { workload: label, connections: options.connections, ...run };
}

async function measureBatches(server: WalletServer, options: Options, source: TransferSource): Promise<Result> {
  const run = await withPool(server, options.batchConnections, (pool) =>
    runLoops(
      pool,
      server,
      options.batchConnections,
      options,
      () => ({ path: '/v1/wallet/balance_transfers', body: source.batch(options.batchSize), transfers: options.batchSize }),
      (status, text) => (status === 200 ? (JSON.parse(text) as { results: Array<{ status: string }> }).results.filter((r) => r.status === 'success').length : 0),
    ),
  );
  return { workload: `batch of ${options.batchSize}`, connections: options.batchConnections, ...run };
}

/** One keep-alive connection per closed loop, closed afterwards. */
async function withPool<T>(server: WalletServer, connections: number, use: (pool: Pool) => Promise<T>): Promise<T> {
  const pool = new Pool(server.baseUrl, { connections, pipelining: 1 });
  try {
    return await use(pool);
  } finally {
    await pool.close();
  }
}

async function startFundedServer(options: Options, extraArgs: string[]): Promise<WalletServer> {
  // The server logs every request (its default) to a file, as it would in production.
  const runDir = mkdtempSync(join(tmpdir(), 'walletd-http-bench-'));
  const server = await WalletServer.start({ args: [...options.serverArgs, ...extraArgs], nodeArgs: options.serverNodeArgs, dataDir: join(runDir, 'data'), logFile: join(runDir, 'serve.log') });
  for (let start = 0; start < options.accounts; start += 64) {
    const ids = Array.from({ length: Math.min(64, options.accounts - start) }, (_, offset) => `bench-${start + offset}`);
    await Promise.all(ids.map((id) => openAccount(server, id)));
    await Promise.all(
      ids.map(async (id) => {
        const reply = await server.call('POST', `/v1/accounts/${id}/deposits`, { json: { transaction_id: `fund-${id}`, amount: FUNDING, currency: 'USD' } });
        if (reply.status !== 200) throw new Error(`funding ${id}: ${reply.status} ${reply.text}`);
      }),
    );
  }
  return server;
}

/** Stops the server and removes its run directory (data and log). */
async function stopAndRemove(server: WalletServer): Promise<void> {
  await server.stop();
  rmSync(dirname(server.dataDir), { recursive: true, force: true });
}

function formatRow(result: Result): string[] {
  const ms = (us: number): string => (us / 1000).toFixed(2);
  const perSecond = (count: number): string => Math.round(count / result.seconds).toLocaleString('en-US');
  const cpuPerTransferUs = (result.serverCpuMs * 1000) / Math.max(1, result.transfers);
  const cpuShare = result.serverCpuMs / (result.seconds * 1000);
  return [
    result.workload,
    String(result.connections),
    result.seconds.toFixed(0),
    perSecond(result.requests),
    perSecond(result.transfers),
    ms(result.latency.p50Us),
    ms(result.latency.p99Us),
    ms(result.latency.p999Us),
    String(result.failures),
    Number.isFinite(cpuShare) ? `${Math.round(cpuShare * 100)}%` : 'n/a',
    Number.isFinite(cpuPerTransferUs) ? cpuPerTransferUs.toFixed(1) : 'n/a',
  ];
}

function printTable(results: readonly Result[], options: Options): void {
  const header = ['workload', 'conns', 'seconds', 'requests/s', 'transfers/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'failed', 'server CPU', 'CPU µs/transfer'];
  const rows = [header, ...results.map(formatRow)];
  const widths = header.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  const line = (row: string[]): string => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  const cpu = cpus();
  console.log(`\nwalletd HTTP API benchmark: fsync on, ${options.accounts} accounts, node ${process.version}, ${cpu.length} CPUs (${cpu[0]?.model ?? 'unknown'})`);
  console.log(`client and server on the same machine, separate processes; load average at the end ${loadavg().map((value) => value.toFixed(1)).join(' ')}\n`);
  console.log(line(header));
  console.log(widths.map((width) => '-'.repeat(width)).join('  '));
  for (const row of rows.slice(1)) console.log(line(row));
  const single = results.find((result) => result.workload === 'single transfer');
  const batch = results.find((result) => result.workload.startsWith('batch'));
  const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  if (single !== undefined) {
    const singleRate = single.requests / single.seconds;
    const singleP99 = single.latency.p99Us / 1000;
    console.log(
      `\ntarget single: >= ${TARGET_SINGLE_REQUESTS_PER_SECOND.toLocaleString('en-US')} req/s with p99 <= ${TARGET_SINGLE_P99_MS} ms: ${verdict(singleRate >= TARGET_SINGLE_REQUESTS_PER_SECOND && singleP99 <= TARGET_SINGLE_P99_MS)}`,
    );
  }
  if (batch !== undefined) {
    console.log(`target batch: >= ${TARGET_BATCH_TRANSFERS_PER_SECOND.toLocaleString('en-US')} transfers/s: ${verdict(batch.transfers / batch.seconds >= TARGET_BATCH_TRANSFERS_PER_SECOND)}`);
  }
}

async function main(): Promise<void> {
  const options = withUsage(USAGE, readOptions);
  const runId = `r${Date.now().toString(36)}`;
  const results: Result[] = [];
  const server = await startFundedServer(options, []);
  let engineLine = '';
  try {
    const source = new TransferSource(runId, options.accounts);
    if (options.workloads.has('single')) {
      const before = await engineCounters(server);
      results.push(await measureSingles(server, options, source, 'single transfer'));
      engineLine = engineSummary(before, await engineCounters(server));
    }
    if (options.workloads.has('batch')) results.push(await measureBatches(server, options, source));
  } finally {
    await stopAndRemove(server);
  }
  if (options.compareCoalesce) {
    const uncoalesced = await startFundedServer(options, ['--no-coalesce']);
    try {
      results.push(await measureSingles(uncoalesced, options, new TransferSource(`${runId}n`, options.accounts), 'single, --no-coalesce'));
    } finally {
      await stopAndRemove(uncoalesced);
    }
  }
  printTable(results, options);
  if (engineLine !== '') console.log(`engine during the single-transfer run, warm-up included (from /metrics): ${engineLine}`);
}

type EngineCounters = Readonly<{ commits: number; fsyncSeconds: number; submits: number; submitRecords: number }>;

/** The server's cumulative group-commit and coalescing counters (since it started). */
async function engineCounters(server: WalletServer): Promise<EngineCounters> {
  const text = (await server.call('GET', '/metrics', { token: null })).text;
  const value = (name: string): number => {
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
    return line === undefined ? NaN : Number(line.slice(name.length + 1));
  };
  return {
    commits: value('walletd_engine_fsync_seconds_count'),
    fsyncSeconds: value('walletd_engine_fsync_seconds_sum'),
    submits: value('walletd_http_submit_records_count{source="coalesced"}'),
    submitRecords: value('walletd_http_submit_records_sum{source="coalesced"}'),
  };
}

/**
 * Group commits, mean fsync and records per coalesced submit between two readings: explains
 * single-request latency. Differences, so the setup's account opens and deposits do not count.
 */
function engineSummary(before: EngineCounters, after: EngineCounters): string {
  const commits = after.commits - before.commits;
  const fsyncMs = ((after.fsyncSeconds - before.fsyncSeconds) / commits) * 1000;
  const perSubmit = (after.submitRecords - before.submitRecords) / (after.submits - before.submits);
  return `${commits} group commits, mean fsync ${fsyncMs.toFixed(2)} ms, ${perSubmit.toFixed(1)} requests per coalesced engine submit`;
}

await main();
