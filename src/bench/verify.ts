/**
 * After each run: did every transfer apply exactly once? Three checks, for walletd and peers
 * alike. (1) Every result code was success (the workload is funded so none can fail). (2) The
 * first batch, sent again with the same transaction ids, answers with its first outcome and
 * moves nothing. (3) Every account's balance equals its funding plus what the transfers sent
 * so far moved, which also makes the sum of balances equal to the total funding.
 */
import { Wire } from '../core/errors.js';
import type { RunMeasurement } from './runner.js';
import type { BenchTarget } from './target.js';
import type { Workload } from './workload.js';

/** Wrong accounts listed by name in the result, at most. */
const WRONG_ACCOUNTS_LISTED_MAX = 5;

export type CheckResult = Readonly<{
  ok: boolean;
  problems: readonly string[];
  transfersApplied: number;
  replayedTransfers: number;
  accountsChecked: number;
  balanceSumMinor: string;
  expectedSumMinor: string;
}>;

export async function checkRun(target: BenchTarget, workload: Workload, run: RunMeasurement): Promise<CheckResult> {
  const problems: string[] = [];
  const rejected = Object.entries(run.codes).filter(([code]) => code !== 'ok');
  if (rejected.length > 0) problems.push(`unexpected result codes: ${rejected.map(([code, n]) => `${code}×${n}`).join(', ')}`);
  if ((run.codes['ok'] ?? 0) !== run.transfersDone) problems.push(`${run.codes['ok'] ?? 0} successes for ${run.transfersDone} transfers`);

  const replayed = Math.min(workload.spec.batchRecords, run.transfersDone);
  if (replayed > 0) {
    const codes = await target.submit(workload.batch(0, replayed), 0, () => undefined);
    const changed = codes.filter((code) => code !== Wire.ok).length;
    if (changed > 0) problems.push(`replaying batch 0: ${changed} of ${replayed} records did not return their first outcome`);
  }

  const expected = workload.expectedBalances(run.transfersDone);
  const actual = await target.readBalances(workload);
  let sum = 0n;
  let expectedSum = 0n;
  const wrong: string[] = [];
  let wrongCount = 0;
  for (let index = 0; index < expected.length; index++) {
    const want = expected[index] ?? 0n;
    const have = actual[index] ?? 0n;
    sum += have;
    expectedSum += want;
    if (have === want) continue;
    wrongCount++;
    if (wrong.length < WRONG_ACCOUNTS_LISTED_MAX) wrong.push(`${workload.accountId(index)} has ${have}, expected ${want}`);
  }
  if (wrongCount > 0) problems.push(`${wrongCount} accounts with a wrong balance: ${wrong.join('; ')}`);
  if (sum !== workload.fundingTotalMinor()) problems.push(`balances sum to ${sum}, funding was ${workload.fundingTotalMinor()}`);
  return {
    ok: problems.length === 0,
    problems,
    transfersApplied: run.transfersDone,
    replayedTransfers: replayed,
    accountsChecked: expected.length,
    balanceSumMinor: sum.toString(),
    expectedSumMinor: expectedSum.toString(),
  };
}
