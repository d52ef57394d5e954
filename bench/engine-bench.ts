/**
 * Engine benchmark (`npm run bench:engine`): drives the engine in-process with durable appends
 * (fsync on every group commit, as in production) and prints transfers/s and batch latency.
 *
 * Scenarios, all in one run so they share the machine's state:
 *   uniform  — every transfer between two accounts drawn uniformly from all accounts;
 *   hot      — every transfer debits one hot account, credits a uniform one.
 * Records are prebuilt before timing starts (the engine's input is the fixed 208-byte record,
 * so prebuilding is what a network client hands over). Options: --accounts N, --transfers N,
 * --batch N, --inflight N, --no-fsync, --seed N, --scenarios uniform,hot, and two engine
 * settings for A/B runs: --chain-hash auto|sha256|blake2b, --prepare-min N, --no-share.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LatencyRecorder, type LatencySummary } from '../src/bench/latency.js';
import { currencyByCode } from '../src/core/currency.js';
import { Wire } from '../src/core/errors.js';
import { BATCH_RECORDS_MAX, RECORD_BYTES, writeTransferRecord } from '../src/core/transfer-record.js';
import { openLedger } from '../src/engine/ledger.js';
import { PREPARE_IN_WORKER_MIN_RECORDS_DEFAULT } from '../src/engine/preparer.js';
import { CHAIN_HASH_NAMES } from '../src/log/frame.js';
import type { Ledger } from '../src/engine/types.js';
import { Prng } from '../src/stdx/prng.js';
import { choiceOption, integerOption, withUsage } from './usage.js';

const USAGE = `Usage: npm run bench:engine -- [options]

  --accounts N       accounts opened and funded first (default 1000000)
  --transfers N      transfers per scenario (default 10000000)
  --batch N          records per submitted batch, 1..${BATCH_RECORDS_MAX} (default ${BATCH_RECORDS_MAX})
  --inflight N       batches in flight (default 8)
  --no-fsync         skip fsync (durability off; for comparison only)
  --seed N           workload seed (default 42)
  --scenarios LIST   uniform,hot (default both)
  --chain-hash H     auto, sha256 or blake2b: the log's chain hash (default auto, the faster here)
  --prepare-min N    batches of N records or more go to the prepare worker; more than
                     ${BATCH_RECORDS_MAX} keeps every batch on the engine thread (default ${PREPARE_IN_WORKER_MIN_RECORDS_DEFAULT})
  --no-share         the engine waits for the worker instead of preparing unclaimed shares`;
const CHAIN_HASHES = ['auto', ...CHAIN_HASH_NAMES] as const;

const SCENARIOS = ['uniform', 'hot'] as const;
const { accounts, transfers, batchSize, inflight, seed, scenarios, fsync, chainHash, prepareMin, prepareSharing } = withUsage(USAGE, () => {
  const { values } = parseArgs({
    options: {
      accounts: { type: 'string', default: '1000000' },
      transfers: { type: 'string', default: '10000000' },
      batch: { type: 'string', default: String(BATCH_RECORDS_MAX) },
      inflight: { type: 'string', default: '8' },
      'no-fsync': { type: 'boolean', default: false },
      seed: { type: 'string', default: '42' },
      scenarios: { type: 'string', default: 'uniform,hot' },
      'chain-hash': { type: 'string', default: 'auto' },
      'prepare-min': { type: 'string', default: String(PREPARE_IN_WORKER_MIN_RECORDS_DEFAULT) },
      'no-share': { type: 'boolean', default: false },
    },
  });
  return {
    accounts: integerOption(values, 'accounts', 2), // a transfer needs two distinct accounts
    transfers: integerOption(values, 'transfers', 1),
    batchSize: integerOption(values, 'batch', 1, BATCH_RECORDS_MAX),
    inflight: integerOption(values, 'inflight', 1),
    seed: integerOption(values, 'seed', Number.MIN_SAFE_INTEGER),
    scenarios: values.scenarios.split(',').map((name) => choiceOption(SCENARIOS, name.trim(), 'scenarios')),
    fsync: !values['no-fsync'],
    chainHash: choiceOption(CHAIN_HASHES, values['chain-hash'], 'chain-hash'),
    prepareMin: integerOption(values, 'prepare-min', 1),
    prepareSharing: !values['no-share'],
  };
});

const USD = currencyByCode('USD')!.numeric;

function accountId(index: number): string {
  return `acct-${index}`;
}

async function openAccounts(ledger: Ledger): Promise<void> {
  const chunk = 10_000;
  for (let start = 0; start < accounts; start += chunk) {
    const opens: Promise<unknown>[] = [];
    for (let index = start; index < Math.min(accounts, start + chunk); index++) {
      opens.push(ledger.openAccount({ accountId: accountId(index), currencyCode: 'USD', owner: accountId(index) }));
    }
    await Promise.all(opens);
  }
}

/** Prebuilds batches of records; `pickFrom` chooses the debited account. */
function buildBatches(prefix: string, count: number, prng: Prng, pickFrom: () => number): Buffer[] {
  const batches: Buffer[] = [];
  for (let done = 0; done < count; ) {
    const size = Math.min(batchSize, count - done);
    const bytes = Buffer.alloc(size * RECORD_BYTES);
    for (let index = 0; index < size; index++) {
      const from = pickFrom();
      let to = prng.below(accounts);
      if (to === from) to = (to + 1) % accounts;
      writeTransferRecord(bytes, index, {
        kind: 'transfer',
        transactionId: `${prefix}-${done + index}`,
        fromAccount: accountId(from),
        toAccount: accountId(to),
        amountMinor: 1n + BigInt(prng.below(100)),
        currencyNumeric: USD,
      });
    }
    batches.push(bytes);
    done += size;
  }
  return batches;
}

async function fund(ledger: Ledger, perAccount: bigint, hotExtra: bigint): Promise<void> {
  const batches: Buffer[] = [];
  for (let start = 0; start < accounts; start += batchSize) {
    const size = Math.min(batchSize, accounts - start);
    const bytes = Buffer.alloc(size * RECORD_BYTES);
    for (let index = 0; index < size; index++) {
      const amount = start + index === 0 ? perAccount + hotExtra : perAccount;
      writeTransferRecord(bytes, index, { kind: 'deposit', transactionId: `fund-${start + index}`, fromAccount: '', toAccount: accountId(start + index), amountMinor: amount, currencyNumeric: USD });
    }
    batches.push(bytes);
  }
  await runBatches(ledger, batches);
}

type RunResult = { seconds: number; records: number; latency: LatencySummary; outcomes: Map<number, number> };

/** Submits batches keeping `inflight` in flight; measures per-batch latency. */
async function runBatches(ledger: Ledger, batches: Buffer[]): Promise<RunResult> {
  const latency = new LatencyRecorder();
  const outcomes = new Map<number, number>();
  let next = 0;
  let records = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      const bytes = batches[next++]!;
      const count = bytes.length / RECORD_BYTES;
      const sent = performance.now();
      const results = await ledger.submitTransfers({ bytes, count });
      latency.recordUs((performance.now() - sent) * 1000);
      records += count;
      for (const code of results.codes) outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  return { seconds: (performance.now() - started) / 1000, records, latency: latency.summary(), outcomes };
}

function report(name: string, result: RunResult): { name: string; rate: number } {
  const ms = (us: number): string => (us / 1000).toFixed(1);
  const rate = result.records / result.seconds;
  const ok = result.outcomes.get(Wire.ok) ?? 0;
  console.log(
    `${name.padEnd(8)} ${result.records.toLocaleString('en-US')} transfers in ${result.seconds.toFixed(2)} s = ` +
      `${Math.round(rate).toLocaleString('en-US')} transfers/s | batch latency ms p50 ${ms(result.latency.p50Us)} ` +
      `p99 ${ms(result.latency.p99Us)} max ${ms(result.latency.maxUs)} | ok ${ok}, other ${result.records - ok}`,
  );
  return { name, rate };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'walletd-bench-'));
  console.log(`engine bench: ${accounts.toLocaleString('en-US')} accounts, ${transfers.toLocaleString('en-US')} transfers per scenario, batches of ${batchSize}, ${inflight} in flight, fsync ${fsync ? 'on' : 'off'}, data ${dataDir}`);
  const expectedTransactions = accounts + transfers * scenarios.length;
  const ledger = await openLedger({
    dataDir,
    fsync,
    snapshotEveryRecords: Number.MAX_SAFE_INTEGER,
    expectedTransactions,
    chainHash,
    prepareInWorkerMinRecords: prepareMin,
    prepareSharing,
  });
  try {
    const sharing = prepareSharing ? 'shared with the engine when it waits' : 'not shared';
    const onEngine = prepareMin > BATCH_RECORDS_MAX ? 'every batch prepared on the engine thread' : `batches from ${prepareMin} records prepared on the worker, ${sharing}`;
    console.log(`chain hash ${ledger.stats().chainHash} (${chainHash}), ${onEngine}`);
    let t = performance.now();
    await openAccounts(ledger);
    console.log(`opened ${accounts.toLocaleString('en-US')} accounts in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    await fund(ledger, 1_000_000n, 10n ** 15n);
    console.log(`funded in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const results: Array<{ name: string; rate: number }> = [];
    for (const scenario of scenarios) {
      const prng = new Prng(seed);
      const pickFrom = scenario === 'hot' ? () => 0 : () => prng.below(accounts);
      // Building the records takes seconds of its own, outside the measured run: said, not silent.
      const building = performance.now();
      const batches = buildBatches(scenario, transfers, prng, pickFrom);
      console.log(`${scenario.padEnd(8)} built ${batches.length.toLocaleString('en-US')} batches in ${((performance.now() - building) / 1000).toFixed(1)} s (not measured)`);
      results.push(report(scenario, await runBatches(ledger, batches)));
    }
    const uniform = results.find((result) => result.name === 'uniform');
    const hot = results.find((result) => result.name === 'hot');
    if (uniform !== undefined && hot !== undefined) console.log(`hot/uniform ratio ${(hot.rate / uniform.rate).toFixed(2)}`);
    const stats = ledger.stats();
    console.log(`prepared: ${stats.batchesPreparedInWorker.toLocaleString('en-US')} batches through the worker, ${stats.recordsSharedByEngine.toLocaleString('en-US')} records of them by the engine`);
    console.log(`state ${Math.round(stats.stateBytes / 1e6)} MB for ${stats.accounts} accounts and ${stats.transactions} ids; log ${Math.round(stats.logBytes / 1e6)} MB; rss ${Math.round(process.memoryUsage().rss / 1e6)} MB`);
  } finally {
    await ledger.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
