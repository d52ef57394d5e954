/**
 * The HTTP side of the engine's input stage: turns validated commands into fixed-size record
 * batches and hands them to `ledger.submitTransfers`.
 *
 * Single-transfer requests that arrive in the same event-loop turn are coalesced into one batch
 * (flushed by `setImmediate`, i.e. right after the poll phase that delivered them). The engine
 * already group-commits concurrent submits into one fsync; coalescing here additionally saves
 * the per-submit cost (one promise, one queue entry, one results array per request instead of
 * per turn). It can be switched off (`--no-coalesce`) to compare.
 *
 * Every engine call is bounded by `timeoutMs`: past it the caller answers 503 request_timeout.
 * The transfer may still be decided later; clients retry with the same transaction_id, which
 * idempotency makes safe.
 */
import { WalletError } from '../core/errors.js';
import { BATCH_RECORDS_MAX, encodeTransferBatch, RECORD_BYTES, type TransferCommand } from '../core/transfer-record.js';
import type { Ledger, TransferResults } from '../engine/types.js';
import { assert } from '../stdx/assert.js';
import type { ApiMetrics } from './metrics.js';

export type RecordOutcome = Readonly<{ wire: number; sequence: number }>;

type Waiter = {
  command: TransferCommand;
  resolve: (outcome: RecordOutcome) => void;
  reject: (error: unknown) => void;
};

export class TransferSubmitter {
  private pending: Waiter[] = [];
  private flushScheduled = false;

  constructor(
    private readonly ledger: Ledger,
    private readonly options: Readonly<{ coalesce: boolean; timeoutMs: number; metrics: ApiMetrics }>,
  ) {}

  /** Submits one command; with coalescing it shares an engine batch with its tick neighbours. */
  submitOne(command: TransferCommand): Promise<RecordOutcome> {
    if (!this.options.coalesce) {
      this.options.metrics.observeSubmit('single', 1);
      return this.submit(encodeTransferBatch([command])).then((results) => outcomeAt(results, 0));
    }
    return new Promise<RecordOutcome>((resolve, reject) => {
      this.pending.push({ command, resolve, reject });
      if (this.pending.length >= BATCH_RECORDS_MAX) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flushScheduledBatch);
      }
    });
  }

  /** Submits a whole batch request's valid items as one engine batch, in order. */
  submitMany(commands: readonly TransferCommand[]): Promise<TransferResults> {
    assert(commands.length > 0 && commands.length <= BATCH_RECORDS_MAX);
    this.options.metrics.observeSubmit('batch', commands.length);
    return this.submit(encodeTransferBatch(commands));
  }

  private readonly flushScheduledBatch = (): void => {
    this.flushScheduled = false;
    if (this.pending.length > 0) this.flush();
  };

  private flush(): void {
    const waiters = this.pending;
    this.pending = [];
    assert(waiters.length > 0 && waiters.length <= BATCH_RECORDS_MAX);
    this.options.metrics.observeSubmit('coalesced', waiters.length);
    this.submit(encodeTransferBatch(waiters.map((waiter) => waiter.command))).then(
      (results) => waiters.forEach((waiter, index) => waiter.resolve(outcomeAt(results, index))),
      (error: unknown) => waiters.forEach((waiter) => waiter.reject(error)),
    );
  }

  private submit(bytes: Buffer): Promise<TransferResults> {
    const count = bytes.length / RECORD_BYTES;
    const submitted = this.ledger.submitTransfers({ bytes, count });
    return withTimeout(submitted, this.options.timeoutMs).then((results) => {
      // Checked for both arrays once per batch, so readers may index them for every record.
      assert(results.codes.length === count && results.sequences.length === count, 'engine returned a result count different from the record count');
      return results;
    });
  }
}

/** The engine's outcome for record `index` of a submitted batch (asserts it is there). */
function outcomeAt(results: TransferResults, index: number): RecordOutcome {
  const wire = results.codes[index];
  const sequence = results.sequences[index];
  assert(wire !== undefined && sequence !== undefined);
  return { wire, sequence };
}

/** Resolves like `promise`, or rejects with request_timeout after `timeoutMs`. */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new WalletError('request_timeout')), timeoutMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
