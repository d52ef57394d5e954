/**
 * The engine's prepare stage on the second core (LMAX's input stage): large transfer batches are
 * copied into shared memory and handed to a worker thread (prepare-worker.ts), which does every
 * part of a decision that does not depend on the state or finds only immutable facts in it
 * (record validation, id and content fingerprints, account id lookups; see prepareRecords). The
 * engine thread then only looks up transaction ids, decides, encodes and applies.
 *
 * Determinism does not depend on the worker: what it finds is a pure function of the records and
 * of ids interned for good, and what it cannot find (an account opened after it looked) the
 * engine looks up itself. If the worker dies, batches are prepared on the engine thread again.
 */
import { Worker } from 'node:worker_threads';
import { PREPARED_WORDS } from '../core/decide.js';
import type { IdTable, IdTableBuffers } from '../core/id-table.js';
import { BATCH_RECORDS_MAX, RECORD_BYTES } from '../core/transfer-record.js';
import type { TransferBatch } from './types.js';

export type ToPrepareWorker =
  | Readonly<{ kind: 'accounts'; buffers: IdTableBuffers }>
  | Readonly<{ kind: 'batch'; records: SharedArrayBuffer; prepared: SharedArrayBuffer; count: number }>;

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

/** A batch copied into shared memory: its records (4-byte aligned) and, once prepared, the prepared words. */
export class PreparedBatch {
  readonly records: Buffer;
  readonly prepared: Int32Array;
  /** 'unprepared' when the worker failed before preparing it: the engine prepares it itself. */
  status: 'preparing' | 'ready' | 'unprepared' = 'preparing';

  constructor(
    readonly buffers: SharedBuffers,
    count: number,
  ) {
    this.records = Buffer.from(buffers.records, 0, count * RECORD_BYTES);
    this.prepared = new Int32Array(buffers.prepared, 0, count * PREPARED_WORDS);
  }
}

type SharedBuffers = Readonly<{ records: SharedArrayBuffer; prepared: SharedArrayBuffer }>;
type Job = Readonly<{ batch: PreparedBatch; done: () => void }>;

export class BatchPreparer {
  private worker: Worker | undefined;
  private lost = false;
  private readonly inFlight: Job[] = [];
  private readonly pool: SharedBuffers[] = [];

  /** `workerUrl`: the worker's script; tests pass one that fails, to exercise the fallback. */
  constructor(
    private readonly accounts: IdTable,
    private readonly warn: (message: string) => void,
    private readonly workerUrl: URL = new URL('./prepare-worker.js', import.meta.url),
  ) {}

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
    prepared.records.set(batch.bytes.subarray(0, batch.count * RECORD_BYTES));
    const worker = this.started();
    this.inFlight.push({ batch: prepared, done });
    if (this.inFlight.length === 1) worker.ref();
    const message: ToPrepareWorker = { kind: 'batch', records: prepared.buffers.records, prepared: prepared.buffers.prepared, count: batch.count };
    worker.postMessage(message);
    return prepared;
  }

  /** The engine has decided the batch: its buffers may be reused. */
  release(batch: PreparedBatch): void {
    if (this.pool.length < POOL_KEPT_MAX) this.pool.push(batch.buffers);
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
    const worker = new Worker(this.workerUrl);
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
    const message: ToPrepareWorker = { kind: 'accounts', buffers: this.accounts.sharedBuffers() };
    this.worker?.postMessage(message);
  }

  private onPrepared(): void {
    const job = this.inFlight.shift();
    if (job === undefined) return;
    if (this.inFlight.length === 0) this.worker?.unref();
    job.batch.status = 'ready';
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
      job.batch.status = 'unprepared';
      job.done();
    }
  }
}

function allocateBuffers(): SharedBuffers {
  return { records: new SharedArrayBuffer(BATCH_RECORDS_MAX * RECORD_BYTES), prepared: new SharedArrayBuffer(BATCH_RECORDS_MAX * PREPARED_WORDS * 4) };
}
