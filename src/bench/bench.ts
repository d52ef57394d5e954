/**
 * One `walletd bench` run: for each distribution asked for, build the workload, then for
 * walletd (and with --peers the PostgreSQL ledger and the Redis wallet) set up, run, check, and
 * close; print the summaries and one side-by-side table per distribution; write the results folder.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { PostgresLedger } from './peers/postgres-ledger.js';
import { REDIS_CONNECTIONS_MAX, RedisWallet } from './peers/redis-wallet.js';
import { startRedisServer } from './peers/redis-server.js';
import { PeerTarget } from './peer-target.js';
import { runLoad, type RunLimits } from './runner.js';
import { checkRun } from './verify.js';
import { describeMachine, sideBySide, summaryLines, writeResults, type TargetResult } from './report.js';
import { benchNotices, type BenchOptions } from './options.js';
import type { BenchTarget } from './target.js';
import { startWalletdServer } from './walletd-server.js';
import { WalletdTarget } from './walletd-target.js';
import { Workload, type Distribution } from './workload.js';

export type BenchOutput = Readonly<{
  /** Results and tables (stdout). */
  print: (line: string) => void;
  /** Progress lines that replace each other on a terminal (stderr). */
  progress: (line: string) => void;
}>;

/** Runs the bench; resolves true when every target passed its exactly-once check. */
export async function runBench(options: BenchOptions, command: string, out: BenchOutput): Promise<boolean> {
  const startedAt = new Date().toISOString();
  const loadAtStart = loadavg()[0] ?? 0;
  for (const notice of benchNotices(options)) out.print(notice);
  const limits: RunLimits = {
    transfers: options.transfers,
    durationMs: options.durationSeconds === undefined ? undefined : options.durationSeconds * 1000,
  };
  const results: TargetResult[] = [];
  let poolRecords = 0;
  for (const distribution of options.distributions) {
    const workload = buildWorkload(options, distribution, out);
    // The pool's size depends on the transfer limit and the batch size only: the same for every distribution.
    poolRecords = workload.poolRecords;
    results.push(...(await runScenario(options, workload, limits, out)));
  }
  out.print('');
  for (const result of results) for (const line of summaryLines(result)) out.print(line);
  for (const distribution of options.distributions) {
    const scenario = results.filter((result) => result.distribution === distribution);
    if (scenario.length < 2) continue;
    out.print('');
    if (options.distributions.length > 1) out.print(`${distribution}:`);
    out.print(sideBySide(scenario));
  }
  const machine = describeMachine();
  const loadAtEnd = loadavg()[0] ?? 0;
  const folder = writeResults(
    {
      command,
      startedAt,
      machine,
      loadAverage: { atStart: loadAtStart, atEnd: loadAtEnd },
      workload: workloadFacts(options, poolRecords),
      results,
    },
    options.resultsDir,
  );
  out.print('');
  out.print(`load average (1 min): ${loadAtStart.toFixed(2)} at the start, ${loadAtEnd.toFixed(2)} at the end, on ${machine.cpus} cores`);
  out.print(`results: ${folder}/result.json, ${folder}/chart.svg`);
  return results.every((result) => result.check.ok);
}

/** walletd, then with --peers the PostgreSQL ledger and the Redis wallet, on one workload. */
async function runScenario(options: BenchOptions, workload: Workload, limits: RunLimits, out: BenchOutput): Promise<TargetResult[]> {
  const results: TargetResult[] = [];
  if (!options.peersOnly) results.push(await measure(await openWalletd(options), workload, limits, out));
  if (options.peers) {
    // Peers replay the same transfer sequence from its start, for at most --peer-seconds.
    const peerLimits: RunLimits = { transfers: options.transfers, durationMs: Math.min(limits.durationMs ?? Infinity, options.peerSeconds * 1000) };
    results.push(await measure(await openPostgres(options, workload), workload, peerLimits, out));
    results.push(await measure(await openRedis(options, workload), workload, peerLimits, out));
  }
  return results;
}

function buildWorkload(options: BenchOptions, distribution: Distribution, out: BenchOutput): Workload {
  const startMs = performance.now();
  // Ids are unique per run, so a rerun against the same --target never collides with old ones.
  const runTag = `b${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const workload = new Workload({
    accounts: options.accounts,
    batchRecords: options.batchSize,
    distribution,
    seed: options.seed,
    zipfExponent: options.zipfExponent,
    transfersMax: options.transfers,
    runTag,
  });
  out.print(
    `workload: ${options.accounts.toLocaleString('en-US')} accounts, ${distribution}, ` +
      `${workload.poolRecords.toLocaleString('en-US')} records prebuilt in ${((performance.now() - startMs) / 1000).toFixed(1)} s, run tag ${runTag}`,
  );
  return workload;
}

/** Setup, load, check, close: the same steps for every target. */
async function measure(target: BenchTarget, workload: Workload, limits: RunLimits, out: BenchOutput): Promise<TargetResult> {
  try {
    const setupStartMs = performance.now();
    await target.setup(workload, (done) => out.progress(`${target.name}: setup, ${done.toLocaleString('en-US')} accounts funded`));
    const setupMs = performance.now() - setupStartMs;
    out.progress(`${target.name}: setup done in ${(setupMs / 1000).toFixed(1)} s; running`);
    const run = await runLoad(target, workload, limits, out.progress);
    out.progress(`${target.name}: checking balances and replaying batch 0`);
    const check = await checkRun(target, workload, run);
    out.progress(`${target.name}: done`);
    return { distribution: workload.spec.distribution, run, check, setupMs };
  } finally {
    await target.close();
  }
}

async function openWalletd(options: BenchOptions): Promise<BenchTarget> {
  const shape = { connections: options.connections, framesInFlightPerConnection: options.framesInFlightPerConnection };
  if (options.target !== undefined) {
    const endpoint = { ...options.target, token: options.token ?? '' };
    return WalletdTarget.connect(endpoint, { ...shape, durability: `as configured on ${options.target.host}:${options.target.port}` });
  }
  const extraArgs = options.expectedTransactions === undefined ? [] : ['--expected-transactions', String(options.expectedTransactions)];
  const server = await startWalletdServer({ durable: options.durable, extraArgs });
  const endpoint = { host: server.host, port: server.protocolPort, token: server.token };
  const durability = options.durable ? 'fsync per group commit' : 'no fsync (--no-fsync)';
  return WalletdTarget.connect(endpoint, { ...shape, durability, server });
}

async function openPostgres(options: BenchOptions, workload: Workload): Promise<BenchTarget> {
  const ledger = await PostgresLedger.open({
    connectionString: options.postgresUrl,
    schema: `walletd_bench_${workload.spec.runTag.toLowerCase()}`,
    clients: options.postgresClients,
    durable: options.durable,
  });
  // Two batches in flight keep every connection busy between batches.
  return new PeerTarget('postgres', ledger, 2, undefined, true);
}

async function openRedis(options: BenchOptions, workload: Workload): Promise<BenchTarget> {
  const lanes = options.connections * options.framesInFlightPerConnection;
  // One connection per batch in flight: Redis reads at most 16 KiB per client per event-loop
  // turn, and with appendfsync always it fsyncs once per turn, so more connections mean more
  // commands per fsync. That is Redis at its best for this workload, which is the fair peer.
  // --connections × --pipeline may exceed the wallet's limit: lanes then share connections.
  const connections = Math.min(lanes, REDIS_CONNECTIONS_MAX);
  const keyPrefix = `walletd-bench:${workload.spec.runTag}:`;
  if (!options.durable) {
    const wallet = await RedisWallet.open({ ...options.redis, keyPrefix, connections });
    return new PeerTarget('redis', wallet, lanes);
  }
  const server = await startRedisServer({ appendFsync: 'always' });
  try {
    const wallet = await RedisWallet.open({ host: server.host, port: server.port, keyPrefix, connections });
    return new PeerTarget('redis', wallet, lanes, server.stop);
  } catch (error) {
    await server.stop();
    throw error;
  }
}

function workloadFacts(options: BenchOptions, poolRecords: number): Record<string, string | number | boolean | null> {
  return {
    accounts: options.accounts,
    distribution: options.distributions.join(','),
    zipfExponent: options.distributions.includes('zipf') ? options.zipfExponent : null,
    transfersLimit: options.transfers ?? null,
    durationSeconds: options.durationSeconds ?? null,
    batchSize: options.batchSize,
    connections: options.connections,
    framesInFlightPerConnection: options.framesInFlightPerConnection,
    durable: options.durable,
    expectedTransactions: options.expectedTransactions ?? null,
    seed: options.seed,
    poolRecords,
    peerSeconds: options.peers ? options.peerSeconds : null,
    target: options.target === undefined ? null : `${options.target.host}:${options.target.port}`,
  };
}
