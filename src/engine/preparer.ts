/**
 * The engine's prepare stage on the second core (LMAX's input stage): large transfer batches are
 * copied into shared memory and handed to a worker thread (prepare-worker.ts), which does every
 * part of a decision that does not depend on the state or finds only immutable facts in it
 * (record validation, id and content fingerprints, account id lookups; see prepareRecords). The
 * engine thread then only looks up transaction ids, decides, encodes and applies. When it
 * reaches a batch the worker has not finished, it prepares the unclaimed shares itself
 * (prepare-shares.ts), so neither thread idles while the other has work.
 *
 * Determinism does not depend on the worker: what it finds is a pure function of the records and
 * of ids interned for good, and what it cannot find (an account opened after it looked) the
 * engine looks up itself. If the worker dies, batches are prepared on the engine thread again.
 */
import type { Worker } from 'node:worker_threads';
import { DecideScratch, PREPARED_WORDS, recordView, type RecordView } from '../core/decide.js';
import { IdTableReader, type IdTable, type IdTableBuffers } from '../core/id-table.js';
import { BATCH_RECORDS_MAX, RECORD_BYTES } from '../core/transfer-record.js';
import { allSharesDone, CLAIM_WORDS, prepareShares, type SharedPreparation, sharesLeft } from './prepare-shares.js';
import { assert } from '../stdx/assert.js';
import type { TransferBatch } from './types.js';
import { newWorker } from '../stdx/node-flags.js';

export type ToPrepareWorker =
  | Readonly<{ kind: 'accounts'; buffers: IdTableBuffers }>
  | Readonly<{ kind: 'batch'; records: SharedArrayBuffer; prepared: SharedArrayBuffer; claims: SharedArrayBuffer; count: number }>;

/** Batches from this many records go to the worker; smaller ones are not worth the thread hop. */
export const PREPARE_IN_WORKER_MIN_RECORDS_DEFAULT = 512;
/**
 * Piece size of a large batch sent to an idle engine (LedgerOptions.preparePieceRecords). In
 * end-to-end A/B runs with 2 batches of 8,190 in flight, 512 and 1,024 did better than 2,048,
 * and 256 (one run) worse than sending the batch whole.
 */
export const PREPARE_PIECE_RECORDS_DEFAULT = 1024;
/**
 * Most batches with the worker at once (136 MiB of buffer pairs). Without a bound, a full engine
 * queue (1M records in batches of 512) held 2,048 pairs, 4.5 GB, for 213 MB of records; past it
 * batches are prepared on the engine thread, as small ones are.
 */
export const PREPARE_IN_FLIGHT_MAX = 64;
/**
 * Buffer pairs kept for reuse: as many as may be in flight, so a steady load of small batches
 * allocates none on the engine thread (136 MiB held at most, only once that many were in use).
 */
const POOL_KEPT_MAX = PREPARE_IN_FLIGHT_MAX;

/**
 * A batch copied into shared memory: its records (4-byte aligned), the prepared words and the
 * claims on its shares (prepare-shares.ts).
 */
export class PreparedBatch implements SharedPreparation {
  readonly records: RecordView;
  readonly prepared: Int32Array;
  readonly claims: Int32Array;
  /** 'unprepared' when the worker failed before preparing it: the engine prepares it itself. */
  status: 'preparing' | 'ready' | 'unprepared' = 'preparing';
  /** The worker has answered for it (or is gone): it touches the buffers no more. */
  answered = false;
  /** The engine has decided it: the buffers may be reused once answered too. */
  released = false;

  constructor(
    readonly buffers: SharedBuffers,
    readonly count: number,
  ) {
    this.records = recordView(Buffer.from(buffers.records, 0, count * RECORD_BYTES));
    this.prepared = new Int32Array(buffers.prepared, 0, count * PREPARED_WORDS);
    this.claims = new Int32Array(buffers.claims).fill(0);
  }
}

type SharedBuffers = Readonly<{ records: SharedArrayBuffer; prepared: SharedArrayBuffer; claims: SharedArrayBuffer }>;
type Job = Readonly<{ batch: PreparedBatch; done: () => void }>;

export class BatchPreparer {
  private worker: Worker | undefined;
  private lost = false;
  private readonly inFlight: Job[] = [];
  private readonly pool: SharedBuffers[] = [];
  /** The engine thread's own view of the account ids and scratch, for the shares it prepares. */
  private readonly reader: IdTableReader;
  private readonly scratch = new DecideScratch();
  /** Records the engine thread prepared in shares of batches sent to the worker (stats). */
  recordsSharedByEngine = 0;

  /**
   * `workerUrl`: the worker's script; tests pass one that fails, to exercise the fallback.
   * `sharing`: whether the engine prepares unclaimed shares (LedgerOptions.prepareSharing).
   */
  constructor(
    private readonly accounts: IdTable,
    private readonly warn: (message: string) => void,
    private readonly workerUrl: URL = new URL('./prepare-worker.js', import.meta.url),
    private readonly sharing = true,
  ) {
    this.reader = new IdTableReader(accounts.sharedBuffers());
  }

  /** Whether a batch can go to the worker now: it has not failed, and fewer than PREPARE_IN_FLIGHT_MAX are with it. */
  get available(): boolean {
    return !this.lost && this.inFlight.length < PREPARE_IN_FLIGHT_MAX;
  }

  /**
   * Copies the batch into shared memory and sends it to the worker; `done` is called when its
   * status leaves 'preparing' (prepared, or handed back when the worker failed), in send order.
   */
  prepare(batch: TransferBatch, done: () => void): PreparedBatch {
    const prepared = new PreparedBatch(this.pool.pop() ?? allocateBuffers(), batch.count);
    prepared.records.bytes.set(batch.bytes.subarray(0, batch.count * RECORD_BYTES));
    const worker = this.started();
    this.inFlight.push({ batch: prepared, done });
    if (this.inFlight.length === 1) worker.ref();
    const { records, prepared: words, claims } = prepared.buffers;
    const message: ToPrepareWorker = { kind: 'batch', records, prepared: words, claims, count: batch.count };
    worker.postMessage(message);
    return prepared;
  }

  /** Whether the engine thread could prepare part of this batch now: sharing is on, the batch is with the worker, and a share is unclaimed. */
  canShare(batch: PreparedBatch): boolean {
    return this.sharing && batch.status === 'preparing' && sharesLeft(batch);
  }

  /**
   * On the engine thread, for a batch still with the worker: prepares the shares the worker has
   * not claimed (none when sharing is off). Returns whether the batch is ready; when not, the
   * worker's answer makes it so.
   */
  share(batch: PreparedBatch): boolean {
    assert(batch.status === 'preparing', 'only a batch with the worker is shared');
    if (!this.sharing) return false;
    this.recordsSharedByEngine += prepareShares(batch, this.scratch, this.reader);
    if (allSharesDone(batch)) batch.status = 'ready';
    return batch.status === 'ready';
  }

  /** The engine has decided the batch: its buffers may be reused once the worker has answered too. */
  release(batch: PreparedBatch): void {
    batch.released = true;
    this.recycle(batch);
  }

  private recycle(batch: PreparedBatch): void {
    if (batch.answered && batch.released && this.pool.length < POOL_KEPT_MAX) this.pool.push(batch.buffers);
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.lost = true;
    if (worker !== undefined) await worker.terminate();
    this.failInFlight();
  }

  private started(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = newWorker(this.workerUrl);
    worker.unref(); // held only while batches are in flight (prepare)
    worker.on('message', () => this.onPrepared());
    worker.on('error', (error) => this.onLost(`prepare worker failed: ${error.message}`));
    worker.on('exit', (code) => this.onLost(`prepare worker exited with code ${code}`));
    this.accounts.onBuffersReplaced = () => this.sendAccounts();
    this.worker = worker;
    this.sendAccounts();
    return worker;
  }

  private sendAccounts(): void {
    const buffers = this.accounts.sharedBuffers();
    this.reader.replaceBuffers(buffers);
    const message: ToPrepareWorker = { kind: 'accounts', buffers };
    this.worker?.postMessage(message);
  }

  private onPrepared(): void {
    const job = this.inFlight.shift();
    if (job === undefined) return;
    if (this.inFlight.length === 0) this.worker?.unref();
    const batch = job.batch;
    // The engine finishes the shares it claims before it returns to the event loop, so an
    // answered batch has every share done.
    if (!allSharesDone(batch)) throw new Error('prepare worker answered a batch with shares not done');
    batch.answered = true;
    if (batch.status === 'preparing') batch.status = 'ready';
    this.recycle(batch);
    job.done();
  }

  private onLost(message: string): void {
    if (this.lost) return;
    this.lost = true;
    this.worker = undefined;
    this.accounts.onBuffersReplaced = undefined;
    this.warn(`${message}; batches are prepared on the engine thread from now on`);
    this.failInFlight();
  }

  private failInFlight(): void {
    for (const job of this.inFlight.splice(0)) {
      // A share the worker claimed may never be done: the engine prepares the whole batch itself.
      if (job.batch.status === 'preparing') job.batch.status = 'unprepared';
      job.batch.answered = true; // the worker is gone and writes nothing more
      job.done();
    }
  }
}

function allocateBuffers(): SharedBuffers {
  return {
    records: new SharedArrayBuffer(BATCH_RECORDS_MAX * RECORD_BYTES),
    prepared: new SharedArrayBuffer(BATCH_RECORDS_MAX * PREPARED_WORDS * 4),
    claims: new SharedArrayBuffer(CLAIM_WORDS * 4),
  };
}
