/**
 * One batch prepared by two threads at once. The prepare worker is handed every large batch, but
 * when it is the slower of the two (its lookups miss the cache as often as the engine's
 * decisions do), the engine would sit idle at a batch still being prepared. Instead the batch is
 * cut into shares of PREPARE_SHARE_RECORDS records that either thread claims, in order, from a
 * counter in shared memory: the worker claims as it goes, and the engine, when the batch it must
 * decide next is not ready, claims what is left. Each share is prepared by exactly one thread,
 * into its own place in the prepared words, so the result is the same whoever prepared which.
 *
 * The claims (2 words of shared memory per batch):
 *
 *   word 0  next    the next share to claim; Atomics.add hands each share out once
 *   word 1  done    shares prepared; Atomics.add after the share's words are written, so a
 *                   thread that loads done = shares sees every share's words
 *
 * A share claimed by the engine is finished before the engine returns to its event loop, so
 * once the worker has answered a batch, every share of it is done.
 */
import { type DecideScratch, prepareRecordRange, type RecordView } from '../core/decide.js';
import type { IdTableReader } from '../core/id-table.js';

/**
 * Records per share: 4 of decide's prefetch rounds (about 65 µs of the worker's time at 1M
 * accounts, 500 ns a record), so a claim's atomic add is noise and the engine waits at most one
 * share for the worker's last. 64 and 512 measured the same within the noise (bench:engine
 * uniform, 1M accounts, two rounds each with the constant edited: 1.69–1.80M, 1.82–1.90M at
 * 128, 1.83–1.84M).
 */
export const PREPARE_SHARE_RECORDS = 128;
export const CLAIM_WORDS = 2;
const NEXT = 0;
const DONE = 1;

export type SharedPreparation = Readonly<{
  records: RecordView;
  count: number;
  prepared: Int32Array;
  /** CLAIM_WORDS words of shared memory, zero before the first claim. */
  claims: Int32Array;
}>;

export function sharesOf(count: number): number {
  return Math.ceil(count / PREPARE_SHARE_RECORDS);
}

/**
 * Claims and prepares shares of the batch until none is left to claim; returns how many records
 * this thread prepared. The batch may still not be ready (allSharesDone): the other thread may be
 * preparing a share it claimed.
 */
export function prepareShares(batch: SharedPreparation, scratch: DecideScratch, accounts: IdTableReader): number {
  const { records, count, prepared, claims } = batch;
  const shares = sharesOf(count);
  let preparedHere = 0;
  for (;;) {
    const share = Atomics.add(claims, NEXT, 1);
    if (share >= shares) return preparedHere;
    const first = share * PREPARE_SHARE_RECORDS;
    const end = Math.min(count, first + PREPARE_SHARE_RECORDS);
    prepareRecordRange(records, first, end, prepared, scratch, accounts);
    Atomics.add(claims, DONE, 1);
    preparedHere += end - first;
  }
}

/** Whether a share of the batch is still unclaimed. */
export function sharesLeft(batch: SharedPreparation): boolean {
  return Atomics.load(batch.claims, NEXT) < sharesOf(batch.count);
}

export function allSharesDone(batch: SharedPreparation): boolean {
  return Atomics.load(batch.claims, DONE) === sharesOf(batch.count);
}
