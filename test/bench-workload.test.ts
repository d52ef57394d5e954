/**
 * The bench's pure parts: the seeded PRNG, the zipf sampler, the prebuilt workload (records,
 * id stamping, pool cycling, expected balances), the CLI options, the chart, and the /proc
 * reader. Properties are checked against brute-force recomputation, not against constants.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../src/stdx/prng.js';
import { ZipfSampler } from '../src/bench/zipf.js';
import { FUNDING_TOTAL_MINOR_MAX, AMOUNT_MINOR_MAX, Workload, type WorkloadSpec } from '../src/bench/workload.js';
import { readTransferRecord, BATCH_RECORDS_MAX } from '../src/core/transfer-record.js';
import { benchNotices, parseBenchArgs, BenchUsageError } from '../src/bench/options.js';
import { renderChart, ninesOf } from '../src/bench/chart.js';
import { sideBySide } from '../src/bench/report.js';
import { LatencyRecorder } from '../src/bench/latency.js';
import { sampleProcess } from '../src/bench/process-stats.js';
import { readListening } from '../src/bench/walletd-server.js';
import { runLoad, type RunMeasurement } from '../src/bench/runner.js';
import type { BenchTarget } from '../src/bench/target.js';
import { POSTGRES_CLIENTS_MAX } from '../src/bench/peers/postgres-ledger.js';

const spec = (overrides: Partial<WorkloadSpec> = {}): WorkloadSpec => ({
  accounts: 50,
  batchRecords: 16,
  distribution: 'uniform',
  seed: 7,
  zipfExponent: 1,
  transfersMax: 100,
  runTag: 'tst',
  ...overrides,
});

test('prng: the same seed gives the same sequence, another seed another one', () => {
  const draw = (seed: number): number[] => {
    const prng = new Prng(seed);
    return Array.from({ length: 8 }, () => prng.nextU32());
  };
  assert.deepEqual(draw(1), draw(1));
  assert.notDeepEqual(draw(1), draw(2));
  assert.notDeepEqual(draw(1), draw(1 + 2 ** 32), 'seeds above 2^32 are distinct');
});

test('prng: below() stays in range and hits every value about equally', () => {
  const prng = new Prng(99);
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < 100_000; i++) {
    const value = prng.below(10);
    assert.ok(Number.isInteger(value) && value >= 0 && value < 10);
    counts[value] = (counts[value] ?? 0) + 1;
  }
  // Each bucket expects 10,000; ±5 % is more than 15 standard deviations.
  for (const count of counts) assert.ok(Math.abs(count - 10_000) < 500, `bucket count ${count}`);
  assert.equal(prng.below(1), 0);
  const float = prng.nextFloat();
  assert.ok(float >= 0 && float < 1);
});

test('zipf: ranks stay in [1, n] and rank 1 comes up as often as 1/H(n) says', () => {
  const n = 1000;
  const zipf = new ZipfSampler(n, 1);
  const prng = new Prng(5);
  const counts = new Map<number, number>();
  const draws = 200_000;
  for (let i = 0; i < draws; i++) {
    const rank = zipf.sample(prng);
    assert.ok(Number.isInteger(rank) && rank >= 1 && rank <= n);
    counts.set(rank, (counts.get(rank) ?? 0) + 1);
  }
  let harmonic = 0;
  for (let k = 1; k <= n; k++) harmonic += 1 / k;
  const expectedFirst = draws / harmonic;
  assert.ok(Math.abs((counts.get(1) ?? 0) - expectedFirst) < expectedFirst * 0.03, `rank 1: ${counts.get(1)} vs ${expectedFirst}`);
  const expectedTenth = draws / harmonic / 10;
  assert.ok(Math.abs((counts.get(10) ?? 0) - expectedTenth) < expectedTenth * 0.1, `rank 10: ${counts.get(10)} vs ${expectedTenth}`);
});

test('workload: a seed fixes every transfer; records carry the stamped id and the pool columns', () => {
  const a = new Workload(spec());
  const b = new Workload(spec());
  assert.deepEqual([...a.fromIndex], [...b.fromIndex]);
  assert.deepEqual([...a.amountMinor], [...b.amountMinor]);
  assert.notDeepEqual([...a.fromIndex], [...new Workload(spec({ seed: 8 })).fromIndex]);
  assert.equal(a.poolRecords, 112, 'the pool is whole batches');

  const batch = a.batch(3, 16);
  assert.equal(batch.firstTransfer, 48);
  for (let index = 0; index < batch.count; index++) {
    const record = readTransferRecord(batch.bytes, index);
    const position = a.poolPosition(48 + index);
    assert.equal(record.kind, 'transfer');
    assert.equal(record.transactionId, a.transactionId(48 + index));
    assert.equal(record.fromAccount, a.accountId(a.fromIndex[position] ?? -1));
    assert.equal(record.toAccount, a.accountId(a.toIndex[position] ?? -1));
    assert.notEqual(record.fromAccount, record.toAccount);
    assert.equal(record.amountMinor, BigInt(a.amountMinor[position] ?? 0));
    assert.ok(record.amountMinor >= 1n && record.amountMinor <= BigInt(AMOUNT_MINOR_MAX));
    assert.equal(record.currencyNumeric, 840);
  }
});

test('workload: past the pool, batches repeat the same moves under new transaction ids', () => {
  const workload = new Workload(spec({ transfersMax: 32 }));
  assert.equal(workload.poolBatches, 2);
  const first = workload.batch(0, 16);
  const firstRecords = Array.from({ length: 16 }, (_, i) => readTransferRecord(first.bytes, i));
  const again = workload.batch(2, 16); // same pool slot, third batch of the run
  for (let i = 0; i < 16; i++) {
    const record = readTransferRecord(again.bytes, i);
    assert.equal(record.transactionId, workload.transactionId(32 + i));
    assert.notEqual(record.transactionId, firstRecords[i]?.transactionId);
    assert.equal(record.fromAccount, firstRecords[i]?.fromAccount);
    assert.equal(record.amountMinor, firstRecords[i]?.amountMinor);
  }
});

test('workload: expected balances are funding plus the moves of the transfers sent, laps included', () => {
  const workload = new Workload(spec({ transfersMax: 32 }));
  for (const sent of [0, 5, 32, 77]) {
    const expected = workload.expectedBalances(sent);
    const brute = Array.from({ length: 50 }, (_, i) => workload.fundingMinor(i));
    for (let k = 0; k < sent; k++) {
      const record = readTransferRecord(workload.batch(Math.floor(k / 16), 16).bytes, k % 16);
      const from = Number(record.fromAccount.slice('tsta'.length));
      const to = Number(record.toAccount.slice('tsta'.length));
      brute[from] = (brute[from] ?? 0n) - record.amountMinor;
      brute[to] = (brute[to] ?? 0n) + record.amountMinor;
    }
    assert.deepEqual([...expected], brute, `after ${sent} transfers`);
    assert.equal(brute.reduce((s, v) => s + v, 0n), workload.fundingTotalMinor());
  }
});

test('workload: hot debits one account, zipf favours low ranks, funding stays within the external account', () => {
  const hot = new Workload(spec({ distribution: 'hot' }));
  assert.ok([...hot.fromIndex].every((from) => from === 0));
  assert.ok([...hot.toIndex].every((to) => to !== 0));
  const zipf = new Workload(spec({ distribution: 'zipf', accounts: 1000, transfersMax: 5000 }));
  const fromZero = [...zipf.fromIndex].filter((from) => from === 0).length;
  const fromLast = [...zipf.fromIndex].filter((from) => from === 999).length;
  assert.ok(fromZero > 50 * Math.max(1, fromLast), `account 0 debited ${fromZero} times, account 999 ${fromLast}`);
  for (const accounts of [2, 1000, 10_000_000]) {
    for (const distribution of ['uniform', 'hot'] as const) {
      const total = new Workload(spec({ accounts, distribution, transfersMax: 16 })).fundingTotalMinor();
      assert.ok(total > 0n && total <= FUNDING_TOTAL_MINOR_MAX, `${distribution} ${accounts}: ${total}`);
    }
  }
});

test('options: defaults, limits and mistakes', () => {
  const defaults = parseBenchArgs([], {});
  assert.ok(defaults !== 'help');
  assert.equal(defaults.batchSize, BATCH_RECORDS_MAX);
  assert.equal(defaults.durable, true);
  assert.equal(defaults.target, undefined);
  assert.ok(defaults.transfers !== undefined && defaults.durationSeconds === undefined);
  assert.equal(defaults.expectedTransactions, defaults.transfers + defaults.accounts, 'every transfer and deposit id');

  const timed = parseBenchArgs(['--duration', '2.5', '--distribution=hot', '--no-durable', '--accounts', '1_000_000'], {});
  assert.ok(timed !== 'help');
  assert.equal(timed.durationSeconds, 2.5);
  assert.equal(timed.transfers, undefined);
  assert.equal(timed.accounts, 1_000_000);
  assert.deepEqual(timed.distributions, ['hot']);
  const both = parseBenchArgs(['--distribution', 'uniform,hot'], {});
  assert.ok(both !== 'help');
  assert.deepEqual(both.distributions, ['uniform', 'hot'], 'a list runs in the order given');
  assert.equal(timed.durable, false);
  assert.equal(timed.expectedTransactions, undefined, 'a timed run cannot know');
  const sized = parseBenchArgs(['--duration', '5', '--expected-transactions', '9000000'], {});
  assert.ok(sized !== 'help' && sized.expectedTransactions === 9_000_000);
  assert.match(benchNotices(timed).join('\n'), /--expected-transactions/, 'a timed run of a started server is told its table will grow');
  assert.deepEqual(benchNotices(sized), [], 'sized: nothing to say');
  assert.deepEqual(benchNotices(defaults), [], 'a counted run sizes the table itself');

  const remote = parseBenchArgs(['--target', '10.0.0.5:7070'], { WALLET_ADMIN_TOKEN: 'secret' });
  assert.ok(remote !== 'help');
  assert.deepEqual(remote.target, { host: '10.0.0.5', port: 7070 });
  assert.equal(remote.token, 'secret');
  const remoteTimed = parseBenchArgs(['--target', '10.0.0.5:7070', '--duration', '5'], { WALLET_ADMIN_TOKEN: 'secret' });
  assert.ok(remoteTimed !== 'help');
  assert.deepEqual(benchNotices(remoteTimed), [], 'a running server was sized when it started');

  assert.equal(parseBenchArgs(['--help'], {}), 'help');
  for (const bad of [['--batch-size', '8191'], ['--distribution', 'pareto'], ['--distribution', 'uniform,pareto'], ['--distribution', 'hot,hot'], ['--distribution', 'uniform,'], ['--target', 'nohost'], ['--target', 'h:1'], ['--frobnicate'], ['--accounts', '1'], ['--pg-clients', String(POSTGRES_CLIENTS_MAX + 1)]]) {
    assert.throws(() => parseBenchArgs(bad, {}), BenchUsageError, bad.join(' '));
  }
});

test('latency and chart: percentiles from the histogram, one line per target in the SVG', () => {
  const recorder = new LatencyRecorder();
  for (let us = 1; us <= 1000; us++) recorder.recordUs(us * 10);
  const summary = recorder.summary();
  assert.equal(summary.batches, 1000);
  assert.ok(Math.abs(summary.p50Us - 5000) <= 5 && Math.abs(summary.p99Us - 9900) <= 10, JSON.stringify(summary));
  assert.ok(summary.maxUs >= 9990 && summary.maxUs <= 10_010);
  assert.equal(ninesOf(0), 0);
  assert.ok(Math.abs(ninesOf(99) - 2) < 1e-9);
  assert.equal(ninesOf(100), 5);

  const run = (target: string, rate: number): RunMeasurement => ({
    target,
    durability: 'test & <durability>',
    lanes: 1,
    transfersDone: rate,
    elapsedMs: 1000,
    transfersPerSecond: rate,
    latency: summary,
    throughput: [{ atMs: 500, transfersPerSecond: rate, slowestBatchMs: 3 }, { atMs: 1000, transfersPerSecond: rate * 2, slowestBatchMs: 0 }],
    codes: { ok: rate },
    server: { cpuSeconds: 0, cpuPercentOfOneCore: 0, rssBytesMax: 0 },
    client: { cpuPercentOfOneCore: 0 },
  });
  const svg = renderChart('title <x>', [
    { label: 'walletd', run: run('walletd', 1_000_000) },
    { label: 'postgres, hot', run: run('postgres', 7_000) },
  ]);
  assert.ok(svg.startsWith('<svg') && svg.trim().endsWith('</svg>'));
  assert.equal(svg.match(/<polyline/g)?.length, 4, 'throughput and latency lines for two targets');
  assert.ok(svg.includes('title &lt;x&gt;') && svg.includes('&amp; &lt;durability&gt;'), 'text is escaped');
  assert.ok(svg.includes('>postgres, hot (test'), 'the legend names each line by its label');

  const check = { ok: true, problems: [], transfersApplied: 1, replayedTransfers: 1, accountsChecked: 1, balanceSumMinor: '1', expectedSumMinor: '1' };
  const table = sideBySide([
    { distribution: 'hot', run: run('walletd', 1_000_000), check, setupMs: 1 },
    { distribution: 'hot', run: run('postgres', 7_000), check, setupMs: 1 },
    { distribution: 'hot', run: run('redis', 200_000), check, setupMs: 1 },
  ]).split('\n');
  const ratios = table.find((line) => line.startsWith('walletd / this'));
  assert.deepEqual(ratios?.split(/\s{2,}/).slice(1), ['1.0×', '143×', '5.0×'], table.join('\n'));
});

test('process stats and server log lines', () => {
  const self = sampleProcess(process.pid);
  assert.ok(self !== undefined && self.cpuSeconds > 0 && self.rssBytes > 1_000_000);
  assert.equal(sampleProcess(2 ** 22 + 1), undefined, 'no such process');
  assert.deepEqual(readListening('{"level":30,"msg":"listening","port":8123}'), { httpPort: 8123 });
  assert.deepEqual(readListening('{"msg":"protocol listening","port":7070}'), { protocolPort: 7070 });
  assert.deepEqual(readListening('{"msg":"ready"}'), { ready: true });
  assert.deepEqual(readListening('not json'), {});
});

test('the throughput series names each interval\'s slowest batch, so a burst of slow batches shows where it was', async () => {
  const work = new Workload({ accounts: 10, batchRecords: 5, distribution: 'uniform', seed: 3, zipfExponent: 1, transfersMax: 1_000_000, runTag: 'slow' });
  // Batches answer at once, but those submitted between 700 and 800 ms into the run take 400 ms.
  // The margins (400 ms slow against a 200 ms bound for the rest) leave room for a busy machine.
  const SLOW_MS = 400;
  let startedMs = 0;
  const target: BenchTarget = {
    name: 'fake',
    durability: 'none',
    lanes: 2,
    setup: async () => undefined,
    submit: async (batch) => {
      const atMs = performance.now() - startedMs;
      // A few ms over: a timer may fire up to a millisecond before its delay by performance.now(),
      // and the latency is measured on that clock (a run once saw 399.9 ms for a 400 ms timer).
      const delayMs = atMs >= 700 && atMs < 800 ? SLOW_MS + 5 : 1;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return new Uint8Array(batch.count);
    },
    readBalances: async () => new BigInt64Array(10),
    serverPids: async () => [],
    close: async () => undefined,
  };
  startedMs = performance.now();
  const run = await runLoad(target, work, { durationMs: 2_700 }, () => undefined);
  const slowest = run.throughput.map((point) => point.slowestBatchMs);
  const shown = slowest.join(', ');
  assert.ok(slowest.length >= 5, `samples every 500 ms (${shown})`);
  // Answered from 1,100 ms on: in the interval ending near 1,500 ms, or the next if timers drift.
  const slow = slowest.flatMap((ms, index) => (ms >= SLOW_MS ? [index] : []));
  assert.ok(slow.length >= 1 && slow.length <= 2 && slow.every((index) => index >= 2 && index <= 3), `the slow batches land where they were answered: ${shown}`);
  for (const [index, ms] of slowest.entries()) if (!slow.includes(index)) assert.ok(ms < 200, `interval ${index} had no slow batch: ${shown}`);
  assert.ok(run.latency.maxUs >= SLOW_MS * 1000);
});
