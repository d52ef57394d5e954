/**
 * The chunk spool: writes the next snapshot's transaction chunk while the interval runs, instead
 * of all at once when the snapshot is taken. The engine's journal copies each new entry as it is
 * inserted (TxnTable.startJournal); after each drain its full blocks (65,536 entries, 1.5 MiB)
 * go to this worker, which appends them to the chunk begun at the last snapshot and hands the
 * blocks back for the journal to reuse. A snapshot then seals the chunk: the last partial block,
 * the trailer, an fsync and a rename, and lists it.
 *
 * Why: gathering an interval's new entries from the table when the snapshot was taken meant 5M
 * reads of random slots in a table of up to GBs, then folding and writing 120 MB in one burst,
 * on the second core that the prepare worker, the socket writes and the client share. Measured
 * before this change (a profile of the snapshot workers under load, 1M accounts, ~800k
 * transfers/s): per snapshot, 1.2 s gathering, 1.1 s writing and 0.6 s folding, wall clock.
 *
 * Failures cost only speed: a chunk that cannot be written, a worker that dies, or more blocks
 * outstanding than SPOOL_BLOCKS_OUT_MAX (a disk that stalls) ends the journal, and the next
 * snapshot scans the table for its entries, as after a restart.
 */
import type { Worker } from 'node:worker_threads';
import { assert } from '../stdx/assert.js';
import { removeOpenChunks, type ChunkRef } from './txn-chunks.js';
import { newWorker } from '../stdx/node-flags.js';

export type SpoolJob = Readonly<{ dir: string }>;
/** Engine to worker. `file` numbers the chunks the engine began, so a late answer is told apart. */
export type ToSpoolWorker = Readonly<
  | { kind: 'open'; file: number; afterSequence: number }
  | { kind: 'entries'; file: number; buffer: ArrayBuffer; words: number }
  | { kind: 'seal'; file: number; toSequence: number; count: number }
  | { kind: 'abandon'; file: number }
  | { kind: 'close'; file: 0 }
>;
/** Worker to engine: a block handed back, a sealed chunk, or a chunk that failed. */
export type FromSpoolWorker = Readonly<{ kind: 'buffer'; buffer: ArrayBuffer } | { kind: 'sealed'; file: number; chunk: ChunkRef } | { kind: 'failed'; file: number; message: string }>;

/**
 * Blocks sent and not yet handed back past which the journal is dropped (96 MiB): the worker is
 * a few seconds behind at 1M entries/s, a disk stalling, and holding more would only grow memory.
 */
export const SPOOL_BLOCKS_OUT_MAX = 64;
/** How long close() waits for the worker to finish what it was sent before stopping it. */
const SPOOL_CLOSE_MS = 10_000;
/** Blocks handed back kept for the journal to reuse; more are left to the garbage collector. */
const SPARE_BLOCKS_MAX = 16;

type Sealing = { resolve: (chunk: ChunkRef) => void; reject: (error: Error) => void };

export class ChunkSpool {
  private worker: Worker | undefined;
  /** The chunk being spooled (its number), or 0 when none is. */
  private file = 0;
  private lastFile = 0;
  private blocksOut = 0;
  private readonly sealing = new Map<number, Sealing>();
  /** Why the current chunk failed (set by the worker's answer), until the next begin. */
  private failure: string | undefined;

  constructor(
    private readonly dir: string,
    private readonly workerUrl: URL,
    /** Where blocks handed back go: the pool new journals take their blocks from. */
    private readonly spareBlocks: Uint32Array[],
    private readonly warn: (message: string) => void,
    /** How long close() waits for the worker before stopping it. */
    private readonly closeTimeoutMs = SPOOL_CLOSE_MS,
  ) {}

  /** Whether a chunk is being spooled, with no failure so far. */
  get spooling(): boolean {
    return this.file !== 0 && this.failure === undefined;
  }

  /** Begins the chunk of the entries logged after `afterSequence` (dropping one still open). */
  begin(afterSequence: number): void {
    this.drop();
    this.file = ++this.lastFile;
    this.failure = undefined;
    this.post({ kind: 'open', file: this.file, afterSequence });
  }

  /** Sends full journal blocks (moved, not copied); false when the chunk cannot take them: the caller drops its journal. */
  ship(blocks: readonly Uint32Array[]): boolean {
    if (!this.spooling || this.blocksOut + blocks.length > SPOOL_BLOCKS_OUT_MAX) return false;
    for (const block of blocks) this.sendBlock(block);
    return true;
  }

  /**
   * Ends the chunk at `toSequence` after the entries in `rest` (the journal's unsent blocks; moved):
   * resolves with its listing once it is fsynced in place, rejects if it could not be.
   */
  seal(rest: readonly Uint32Array[], toSequence: number, count: number): Promise<ChunkRef> {
    assert(this.spooling, 'a seal without a chunk being spooled');
    const file = this.file;
    for (const block of rest) if (block.length > 0) this.sendBlock(block);
    this.post({ kind: 'seal', file, toSequence, count });
    this.file = 0;
    this.worker?.ref(); // a seal keeps the process alive until answered
    return new Promise((resolve, reject) => this.sealing.set(file, { resolve, reject }));
  }

  /** Gives up the chunk being spooled (its temporary file is removed: by the worker, or already by onLost if it died). */
  drop(): void {
    if (this.file === 0) return;
    this.worker?.postMessage({ kind: 'abandon', file: this.file } satisfies ToSpoolWorker);
    this.file = 0;
  }

  /** Drops the chunk being spooled and stops the worker (after the engine's final snapshot). */
  async close(): Promise<void> {
    this.drop();
    const worker = this.worker;
    this.worker = undefined;
    if (worker === undefined) return;
    // The abandon above is handled before the exit: messages are read in order, and the port
    // closing lets the worker's loop end once its queue is empty. One stuck in a write that does
    // not return (a hung disk) is stopped; what it leaves is removed at the next start.
    await new Promise<void>((resolve) => {
      worker.ref(); // until it has exited
      const stop = setTimeout(() => void worker.terminate(), this.closeTimeoutMs);
      worker.once('exit', () => {
        clearTimeout(stop);
        resolve();
      });
      worker.postMessage({ kind: 'close', file: 0 } satisfies ToSpoolWorker);
    });
  }

  private sendBlock(block: Uint32Array): void {
    assert(block.byteOffset === 0, 'a journal block starts its buffer');
    this.blocksOut++;
    this.post({ kind: 'entries', file: this.file, buffer: block.buffer as ArrayBuffer, words: block.length }, [block.buffer as ArrayBuffer]);
  }

  private post(message: ToSpoolWorker, transfer: ArrayBuffer[] = []): void {
    this.started().postMessage(message, transfer);
  }

  private started(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = newWorker(this.workerUrl, { workerData: { dir: this.dir } satisfies SpoolJob });
    worker.unref(); // held only while a seal is pending
    worker.on('message', (message: FromSpoolWorker) => this.onMessage(message));
    worker.on('error', (error) => this.onLost(worker, `chunk spool worker failed: ${error.message}`));
    worker.on('exit', (code) => this.onLost(worker, `chunk spool worker exited with code ${code}`));
    this.worker = worker;
    return worker;
  }

  private onMessage(message: FromSpoolWorker): void {
    if (message.kind === 'buffer') {
      this.blocksOut--;
      if (this.spareBlocks.length < SPARE_BLOCKS_MAX) this.spareBlocks.push(new Uint32Array(message.buffer));
      return;
    }
    const sealing = this.sealing.get(message.file);
    this.sealing.delete(message.file);
    if (this.sealing.size === 0) this.worker?.unref();
    if (message.kind === 'sealed') {
      sealing?.resolve(message.chunk);
      return;
    }
    const reason = `chunk spool: ${message.message}`;
    if (message.file === this.file) this.failure = reason;
    if (sealing !== undefined) sealing.reject(new Error(reason));
    else if (message.file === this.file) this.warn(`${reason}; the next snapshot scans the transaction table instead`);
  }

  /**
   * The worker is gone (crashed, or stopped by close): pending seals fail; the next begin starts
   * another. Every open chunk on disk was the dead worker's (a new one starts only later), so they
   * go now rather than at the next start: one can hold hundreds of MB.
   */
  private onLost(worker: Worker, reason: string): void {
    if (this.worker === worker) {
      this.worker = undefined;
      if (this.file !== 0) this.failure = reason;
      removeOpenChunks(this.dir, this.warn);
    }
    this.blocksOut = 0;
    for (const sealing of this.sealing.values()) sealing.reject(new Error(reason));
    this.sealing.clear();
  }
}
