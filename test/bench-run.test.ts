/**
 * The load runner and the exactly-once check end to end, on the real peer ledgers: a run
 * applies exactly the transfers it claims (per-account balances match the workload's
 * arithmetic), a run longer than the prebuilt pool cycles through it under fresh ids, a timed
 * run stops, and the check notices money moved behind its back. Figures are printed by the
 * bench, never asserted here. Skipped (loudly) without the servers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RedisWallet } from '../src/bench/peers/redis-wallet.js';
import { PostgresLedger } from '../src/bench/peers/postgres-ledger.js';
import { PeerTarget } from '../src/bench/peer-target.js';
import { runLoad } from '../src/bench/runner.js';
import { checkRun } from '../src/bench/verify.js';
import { WORKLOAD_CURRENCY_NUMERIC, Workload, type Distribution } from '../src/bench/workload.js';
import { postgresUrl, requireService } from './support/services.js';

const redis = await requireService('redis');
const postgres = await requireService('postgres');
const quiet = (): void => undefined;

function workload(distribution: Distribution, transfersMax: number, batchRecords: number): Workload {
  const runTag = `t${randomBytes(4).toString('hex')}`;
  return new Workload({ accounts: 200, batchRecords, distribution, seed: 11, zipfExponent: 1, transfersMax, runTag });
}

/** Opens the peer as a target, sets it up for `work`, runs `body`, and closes it whatever happens. */
async function withPostgres(work: Workload, body: (target: PeerTarget, ledger: PostgresLedger) => Promise<void>): Promise<void> {
  const ledger = await PostgresLedger.open({ connectionString: postgresUrl(), schema: `bench_test_${work.spec.runTag}`, clients: 4, durable: true });
  await withTarget(new PeerTarget('postgres', ledger, 2, undefined, true), work, (target) => body(target, ledger));
}

async function withRedis(work: Workload, body: (target: PeerTarget, wallet: RedisWallet) => Promise<void>): Promise<void> {
  const wallet = await RedisWallet.open({ host: '127.0.0.1', port: 6379, keyPrefix: `bench-test:${work.spec.runTag}:`, connections: 2 });
  await withTarget(new PeerTarget('redis', wallet, 4), work, (target) => body(target, wallet));
}

async function withTarget(target: PeerTarget, work: Workload, body: (target: PeerTarget) => Promise<void>): Promise<void> {
  try {
    await target.setup(work, quiet);
    await body(target);
  } finally {
    await target.close();
  }
}

test('runner on the Redis wallet: every transfer applies once and the check passes', { skip: redis.skip }, async () => {
  for (const distribution of ['uniform', 'zipf', 'hot'] as const) {
    const work = workload(distribution, 5_000, 500);
    await withRedis(work, async (target) => {
      const run = await runLoad(target, work, { transfers: 4_321 }, quiet);
      assert.equal(run.transfersDone, 4_321, 'a partial last batch is sent too');
      assert.deepEqual(run.codes, { ok: 4_321 });
      assert.equal(run.latency.batches, 9);
      const check = await checkRun(target, work, run);
      assert.deepEqual(check.problems, [], distribution);
      assert.equal(check.replayedTransfers, 500);
    });
  }
});

test('runner: a run longer than the pool cycles it under new ids, and a timed run stops', { skip: redis.skip }, async () => {
  // The pool holds 600 records (3 batches) for 8 lanes: slots are shared and waited for.
  const work = workload('uniform', 600, 200);
  await withRedis(work, async (target) => {
    const run = await runLoad(target, work, { transfers: 6_000 }, quiet);
    assert.deepEqual(run.codes, { ok: 6_000 }, 'no id was reused');
    assert.deepEqual((await checkRun(target, work, run)).problems, []);
    // Timed: the same sequence again (every id known by now, so nothing moves), for 300 ms.
    const startMs = Date.now();
    const timed = await runLoad(target, work, { durationMs: 300 }, quiet);
    assert.ok(timed.transfersDone > 0);
    assert.ok(Date.now() - startMs < 10_000, 'the run stopped');
  });
});

test('check: money moved outside the run is found', { skip: redis.skip }, async () => {
  const work = workload('uniform', 1_000, 250);
  await withRedis(work, async (target, wallet) => {
    const run = await runLoad(target, work, { transfers: 1_000 }, quiet);
    // A transfer the bench did not send: two balances are off, though the sum still holds.
    const stray = { transactionId: 'stray', fromAccount: work.accountId(0), toAccount: work.accountId(1), amountMinor: 5n, currencyNumeric: WORKLOAD_CURRENCY_NUMERIC };
    assert.deepEqual([...(await wallet.transfers([stray]))], [0]);
    const check = await checkRun(target, work, run);
    assert.equal(check.ok, false);
    assert.match(check.problems.join(' '), /2 accounts with a wrong balance/);
  });
});

test('runner on the PostgreSQL ledger: per-record progress, exact balances', { skip: postgres.skip }, async () => {
  const work = workload('hot', 600, 200);
  await withPostgres(work, async (target, ledger) => {
    const run = await runLoad(target, work, { transfers: 600 }, quiet);
    assert.deepEqual(run.codes, { ok: 600 });
    assert.deepEqual((await checkRun(target, work, run)).problems, []);
    const counts = await ledger.transferCounts();
    assert.equal(counts.get(0), 600, 'the replayed batch added no transfer rows');
  });
});

test('runner on the PostgreSQL ledger: a timed run stops mid-batch and what ran is a prefix', { skip: postgres.skip }, async () => {
  const work = workload('hot', 40_000, 8_000);
  await withPostgres(work, async (target, ledger) => {
    const startMs = Date.now();
    const run = await runLoad(target, work, { durationMs: 400 }, quiet);
    assert.ok(Date.now() - startMs < 5_000, 'no waiting for two whole batches of 8,000');
    assert.ok(run.transfersDone > 0 && run.transfersDone < 16_000, `${run.transfersDone} transfers`);
    assert.deepEqual(run.codes, { ok: run.transfersDone });
    // Balances match transfers 0 .. done-1 exactly: the dropped ones were never started.
    assert.deepEqual((await checkRun(target, work, run)).problems, []);
    assert.equal((await ledger.transferCounts()).get(0), run.transfersDone);
  });
});
