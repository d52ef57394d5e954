/**
 * What the load runner needs from a ledger under test: walletd through its client SDK, or a
 * peer (the PostgreSQL ledger, the Redis wallet). Every target gets the same workload.
 */
import type { BatchView, Workload } from './workload.js';

/** Result code of a record the target dropped unsent after stopEarly() (not a wire code). */
export const NOT_SENT = 255;

export interface BenchTarget {
  /** Short name for tables ("walletd", "postgres", "redis"). */
  readonly name: string;
  /** How acknowledged transfers survive a crash, in words, e.g. "fsync per group commit". */
  readonly durability: string;
  /** Batches the runner keeps in flight at once (connections × pipelining). */
  readonly lanes: number;
  /** Opens every account of the workload and funds it. Not timed. */
  setup(workload: Workload, onProgress: (accountsDone: number) => void): Promise<void>;
  /**
   * Applies one batch; resolves with one wire result code per record (0 = success). A target
   * that finishes records one by one may report them through `recordsDone` as they finish, for
   * the progress line and the throughput chart.
   */
  submit(batch: BatchView, lane: number, recordsDone: (records: number) => void): Promise<Uint8Array>;
  /**
   * Optional: drop the records still waiting to be sent (their code becomes NOT_SENT), so a
   * timed run of a slow target ends on time instead of finishing whole batches. Only for
   * targets that start records in transfer order, so what was applied stays a prefix.
   */
  stopEarly?(): void;
  /** Balances of accounts 0 .. n−1 in minor units, read after the run for the money check. */
  readBalances(workload: Workload): Promise<BigInt64Array>;
  /** Process ids whose CPU time and memory count as the server's. */
  serverPids(): Promise<number[]>;
  close(): Promise<void>;
}
