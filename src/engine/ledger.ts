/**
 * The partition engine: one writer owns the state (LMAX's business logic processor).
 *
 * Commands queue up; a drain (one per event-loop turn) takes every queued command, decides and
 * applies each against the in-memory state, encodes the resulting events into one frame and
 * hands it to the group-commit writer. Answers go out only when the fsync covering the frame
 * returns. While a frame is being written the next drain already runs, so deciding and disk I/O
 * overlap, and the writer puts every frame that queued meanwhile into one write and one fsync.
 */
import { assert } from '../stdx/assert.js';
import { currencyByCode, currencyByNumeric, type Currency } from '../core/currency.js';
import { captureAccountIdParts, stateDigest, type AccountIdParts } from '../core/digest.js';
import { CAPTURE_PIECE_ACCOUNTS, RecordsCapture } from '../core/records-capture.js';
import { codeOfWire, WalletError, Wire } from '../core/errors.js';
import { EventBuffer } from '../core/event-buffer.js';
import { ACCOUNT_OPENED_FIXED_BYTES, encodeAccountOpened, NO_INDEX, type TransferRecordedEvent } from '../core/events.js';
import { DecideScratch, executeTransferBatch, fingerprintTransactionId, Outcome, recordView } from '../core/decide.js';
import { ID_BYTES_MAX, isValidId } from '../core/ids.js';
import { IdTable } from '../core/id-table.js';
import { ACCOUNTS_MAX, LedgerState } from '../core/ledger-state.js';
import { TXN_TABLE_ENTRIES_MAX, type EntriesHold } from '../core/txn-table.js';
import { BATCH_RECORDS_MAX, KIND_NAMES, RECORD_BYTES } from '../core/transfer-record.js';
import { CHAIN_HASH_NAMES, encodeUnsealedFrame, fasterChainHash, FRAME_BODY_BYTES_MAX, FRAME_EVENTS_MAX, FRAME_VERSION_OF, type ChainHashName } from '../log/frame.js';
import { FramePool } from '../log/frame-pool.js';
import { LogReadIndex } from '../log/read-index.js';
import { LogWriter } from '../log/writer.js';
import { dataPaths, ensureDataDirs, recover } from './recovery.js';
import { commitSnapshotFile, pruneSnapshots, type SnapshotMeta } from './snapshot.js';
import type { NewEntries, SnapshotPosition, WrittenSnapshot } from './snapshot-write.js';
import type { FromSnapshotWorker, SnapshotJob, ToSnapshotWorker } from './snapshot-worker.js';
import { removeOpenChunks, type ChunkRef } from './txn-chunks.js';
import { ChunkSpool } from './chunk-spool.js';
import { rmSync } from 'node:fs';
import { lockDataDir } from './lock.js';
import { BatchPreparer, PREPARE_IN_WORKER_MIN_RECORDS_DEFAULT, PREPARE_PIECE_RECORDS_DEFAULT, type PreparedBatch } from './preparer.js';
import { LOG_SCRUB_BYTES_PER_SECOND_DEFAULT, LogScrub } from './scrub.js';
import { newWorker } from '../stdx/node-flags.js';
import type {
  AccountView,
  BalanceQuery,
  EngineStats,
  HistoricalBalance,
  Ledger,
  LedgerOptions,
  LogScrubStatus,
  OpenAccountOutcome,
  OpenAccountRequest,
  OwnedAccounts,
  Statement,
  StatementEntry,
  TransferBatch,
  TransferResults,
  TransferView,
} from './types.js';

export const QUEUE_RECORDS_MAX_DEFAULT = 1 << 20;
/**
 * Buffers of records in flight between the engine and a snapshot's worker (1 MiB each). The
 * engine refills every buffer handed back in one turn, so more of them hand the records out
 * faster and fewer change first: bench:memory (10M accounts) kept at most 1.97M records with 4
 * buffers, 1.32-1.37M with 16 (71 and 48 MB).
 */
const CAPTURE_BUFFERS = 16;
/** The most buffers of records a snapshot may have in flight (snapshotPiecesInFlight). */
const CAPTURE_BUFFERS_MAX = 64;
/** Decided-but-not-durable log bytes at which deciding waits (a few of the largest frames). */
export const LOG_BACKLOG_BYTES_MAX_DEFAULT = 256 * 1024 * 1024;
export const SNAPSHOT_EVERY_RECORDS_DEFAULT = 5_000_000;
/**
 * Most entries the transaction journal may hold (16M: a spooled chunk of 384 MiB). A journal is
 * bounded by twice the snapshot interval (room for a snapshot that comes late); an interval
 * above half of this keeps no journal at all, and snapshots scan the table instead. Past its
 * bound (snapshots failing) a journal is dropped: the next snapshot scans.
 */
const JOURNAL_ENTRIES_MAX = 1 << 24;
/** Events one command may add beyond its records: an external account opened per currency. */
const EXTRA_EVENTS_PER_COMMAND_MAX = 1000;
const STATEMENT_LIMIT_MAX = 1000;

assert(BATCH_RECORDS_MAX + EXTRA_EVENTS_PER_COMMAND_MAX <= FRAME_EVENTS_MAX, 'a full batch must fit one frame');

type TransfersCommand = {
  type: 'transfers';
  batch: TransferBatch;
  /** Set when the prepare worker takes it; the queue waits at a batch whose status is still 'preparing'. */
  prepared?: PreparedBatch;
  resolve: (results: TransferResults) => void;
  reject: (error: unknown) => void;
};
/** The command's batch while it is with the prepare worker, else undefined. */
function batchPreparing(command: Command): PreparedBatch | undefined {
  return command.type === 'transfers' && command.prepared?.status === 'preparing' ? command.prepared : undefined;
}

type OpenCommand = { type: 'open'; request: OpenAccountRequest; resolve: (outcome: OpenAccountOutcome) => void; reject: (error: unknown) => void };
type Command = TransfersCommand | OpenCommand;
type Completion = () => void;

/**
 * The numeric options, checked before anything touches the data directory: a zero, negative,
 * fractional or NaN count would otherwise refuse every submit (queueRecordsMax), snapshot after
 * every drain or never (snapshotEveryRecords), roll over before every frame (segmentBytesMax)
 * or size nothing.
 */
function checkOptions(options: LedgerOptions): void {
  const counts = {
    snapshotEveryRecords: { value: options.snapshotEveryRecords, min: 1 },
    snapshotPieceAccounts: { value: options.snapshotPieceAccounts, min: 1, max: CAPTURE_PIECE_ACCOUNTS },
    snapshotPiecesInFlight: { value: options.snapshotPiecesInFlight, min: 1, max: CAPTURE_BUFFERS_MAX },
    queueRecordsMax: { value: options.queueRecordsMax, min: 1 },
    logBacklogBytesMax: { value: options.logBacklogBytesMax, min: 1 },
    segmentBytesMax: { value: options.segmentBytesMax, min: 1 },
    prepareInWorkerMinRecords: { value: options.prepareInWorkerMinRecords, min: 1 },
    preparePieceRecords: { value: options.preparePieceRecords, min: 1 },
    expectedTransactions: { value: options.expectedTransactions, min: 0, max: TXN_TABLE_ENTRIES_MAX },
    maxTransactions: { value: options.maxTransactions, min: 1, max: TXN_TABLE_ENTRIES_MAX },
    maxAccounts: { value: options.maxAccounts, min: 1, max: ACCOUNTS_MAX },
    logScrubBytesPerSecond: { value: options.logScrubBytesPerSecond === 'off' ? undefined : options.logScrubBytesPerSecond, min: 1 },
  };
  for (const [name, { value, min, max = Number.MAX_SAFE_INTEGER }] of Object.entries(counts) as Array<[string, { value: number | undefined; min: number; max?: number }]>) {
    assert(value === undefined || (Number.isSafeInteger(value) && value >= min && value <= max), `${name} must be an integer from ${min} to ${max}`);
  }
  const chainHash: unknown = options.chainHash;
  const chainHashes: readonly unknown[] = CHAIN_HASH_NAMES;
  assert(chainHash === undefined || chainHash === 'auto' || chainHashes.includes(chainHash), `chainHash must be auto, ${CHAIN_HASH_NAMES.join(' or ')}`);
  assert(options.prepareSharing === undefined || typeof options.prepareSharing === 'boolean', 'prepareSharing must be a boolean');
}

export async function openLedger(options: LedgerOptions): Promise<Ledger> {
  checkOptions(options);
  ensureDataDirs(options.dataDir);
  const unlock = lockDataDir(options.dataDir);
  try {
    return await openLocked(options, unlock);
  } catch (error) {
    unlock();
    throw error;
  }
}

async function openLocked(options: LedgerOptions, unlock: () => void): Promise<Ledger> {
  const recovered = recover(options.dataDir, {
    ...(options.onRecoveryProgress === undefined ? {} : { onProgress: options.onRecoveryProgress }),
    warn: (message) => process.emitWarning(message),
    ...(options.expectedTransactions === undefined ? {} : { expectedTransactions: options.expectedTransactions }),
  });
  const { logDir } = dataPaths(options.dataDir);
  const readIndex = new LogReadIndex(logDir);
  const engine = new PartitionEngine(options, recovered.state, readIndex, unlock);
  const writer = await LogWriter.open(
    {
      logDir,
      fsync: options.fsync ?? true,
      ...(options.segmentBytesMax === undefined ? {} : { segmentBytesMax: options.segmentBytesMax }),
      onFrameWritten: (frame) => {
        readIndex.noteFrame(frame);
        engine.notePosition(frame.segmentFirstSequence, frame.offset + frame.bytes);
      },
      onFrameBufferDone: (frame) => engine.framePool.give(frame),
      onGroupCommitted: (frames, events, bytes, syncMs) => {
        options.observer?.onFlush?.({ events, frames, bytes, fsyncMs: syncMs });
        engine.logCaughtUp();
      },
      onFatal: (error) => engine.fatal(error),
      sealAfter: recovered.chainHash,
    },
    recovered.tail,
    recovered.state.headSequence + 1,
  );
  // Indexed only now that LogWriter.open has cut any torn tail: a torn frame with a whole header
  // would otherwise be indexed, and the first new frame (same sequence) would fail the index's
  // order assertion and stop the process.
  readIndex.indexTail();
  engine.attach(writer, recovered.tail, recovered.snapshot);
  return engine;
}

type ChainEntry = Readonly<{ event: TransferRecordedEvent; atMs: number; isDebit: boolean; balanceAfter: bigint; previous: number }>;

/** The batch's records as a Buffer at a 4-byte-aligned address (copied when not aligned). */
function alignedRecords(batch: TransferBatch): Buffer {
  const length = batch.count * RECORD_BYTES;
  if (batch.bytes.byteOffset % 4 === 0) return Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset, length);
  const copy = Buffer.alloc(length);
  copy.set(batch.bytes.subarray(0, length));
  return copy;
}

/**
 * A snapshot given up because its scan of the transaction table was voided by a growth (see
 * TxnTable.holdEntries). Nothing is wrong with the ledger: the next drain tries again.
 */
export class SnapshotAbandoned extends Error {
  override readonly name = 'SnapshotAbandoned';
  constructor() {
    super('snapshot abandoned: a growth of the transaction table moved entries while its scan read them; the next snapshot scans again');
  }
}

/** Removes a snapshot's temporary file; one left behind is only disk, and the next commit prunes it. */
function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch (error) {
    process.emitWarning(`could not remove ${path}: ${String(error)}`);
  }
}

/** pruneSnapshots after a failed snapshot: what it leaves is only disk, and the next commit prunes it. */
function pruneSnapshotsQuietly(dir: string): void {
  try {
    pruneSnapshots(dir);
  } catch (error) {
    process.emitWarning(`could not prune ${dir}: ${String(error)}`);
  }
}

/**
 * After an automatic snapshot fails, the next waits 1 s, then twice as long after each further
 * failure, up to 5 min; a snapshot that succeeds resets it. Without it, a lasting failure (a full
 * disk, a worker that cannot start) was retried at every drain: 77 attempts in 20 s in one run.
 */
const SNAPSHOT_RETRY_FIRST_MS = 1_000;
const SNAPSHOT_RETRY_MAX_MS = 5 * 60_000;

/** How long a snapshot worker told to abort may take to remove its file and exit before it is terminated. */
const SNAPSHOT_WORKER_ABORT_MS = 10_000;

/** What writeSnapshotInWorker needs: where, what was captured, and how to run the worker. */
type SnapshotWrite = Readonly<{
  /** The snapshot directory. */
  dir: string;
  parts: AccountIdParts;
  position: SnapshotPosition;
  capture: RecordsCapture;
  /** The live state the capture copies its pieces from. */
  state: LedgerState;
  /** Where the new entries are; called once, when the records are all out. */
  takeEntries: () => Promise<NewEntries>;
  /** The chunks of the previous snapshot, which the new one lists after merging. */
  chunks: readonly ChunkRef[];
  /** Record buffers in flight between the engine and the worker. */
  buffers: number;
  workerUrl: URL;
}>;

/**
 * Runs snapshot-worker.ts: shares the ids, hands it the captured records a piece at a time (the
 * next piece is copied as a buffer comes back, between drains), then where the new entries
 * are, from `takeEntries` once the records are all out (it may hold the table's entries in
 * place from then on). Settles only once the worker has exited,
 * so a failed snapshot's temporary file is gone (the worker removes it) before a retry may write
 * the same name; a failure on the engine's side tells the worker to abort.
 */
function writeSnapshotInWorker(job: SnapshotWrite): Promise<WrittenSnapshot> {
  const { dir, parts, position, capture, state, takeEntries, chunks, buffers, workerUrl } = job;
  return new Promise((resolve, reject) => {
    const job: SnapshotJob = { dir, parts, position };
    const worker = newWorker(workerUrl, { workerData: job });
    let outcome: { written: WrittenSnapshot } | { error: unknown } | undefined;
    worker.once('exit', (code) => {
      if (outcome !== undefined && 'written' in outcome) resolve(outcome.written);
      // A worker that ends without a message (out of memory, process.exit) would otherwise leave
      // the snapshot pending for good, and with it every later snapshot and close().
      else reject(outcome?.error ?? new Error(`snapshot worker exited with code ${code} before answering`));
    });
    /** A failure on this side: the worker removes its file and exits (or is stopped). */
    const fail = (error: unknown): void => {
      if (outcome !== undefined) return;
      outcome = { error };
      try {
        worker.postMessage({ kind: 'abort' } satisfies ToSnapshotWorker);
      } catch {
        // Gone already: its exit settles the promise.
      }
      setTimeout(() => void worker.terminate(), SNAPSHOT_WORKER_ABORT_MS).unref();
    };
    const send = (message: ToSnapshotWorker, transfer: ArrayBuffer[] = []): void => worker.postMessage(message, transfer);
    let buffersOut = 0;
    let ended = false;
    const end = (): void => {
      if (ended || buffersOut > 0 || !capture.done) return;
      ended = true;
      takeEntries().then((newEntries) => {
        if (outcome === undefined) send({ kind: 'end', newEntries, chunks });
      }, fail);
    };
    const pump = (buffer: ArrayBuffer): void => {
      if (outcome !== undefined) return;
      try {
        const words = capture.copyNextPiece(state, new Int32Array(buffer));
        if (words > 0) {
          buffersOut++;
          send({ kind: 'records', buffer, bytes: words * 4 }, [buffer]);
        }
        end();
      } catch (error) {
        fail(error);
      }
    };
    worker.on('message', (message: FromSnapshotWorker) => {
      if (message.kind === 'buffer') {
        buffersOut--;
        pump(message.buffer);
      } else if (outcome === undefined) {
        // The worker exits after either; its exit settles the promise.
        outcome = message.kind === 'written' ? { written: message.written } : { error: new Error(`snapshot worker: ${message.message}`) };
      } else if (message.kind === 'written') {
        // It finished before it read our abort: its file is ours to remove.
        removeQuietly(message.written.tempPath);
      }
    });
    worker.once('error', fail);
    for (let i = 0; i < buffers; i++) pump(new ArrayBuffer(capture.pieceWords * 4));
  });
}

/** OwnedAccounts by indices: the owner is looked up once, then each id field once; no strings. */
class IndexedOwnedAccounts implements OwnedAccounts {
  private readonly ownerIndex: number;
  private readonly ownerAccount: number;
  /** The id being looked up, zero-padded to whole words as IdTable.find wants it. */
  private readonly idWords = new Int32Array(ID_BYTES_MAX / 4);
  private readonly idBytes = new Uint8Array(this.idWords.buffer);

  constructor(
    private readonly state: LedgerState,
    owner: string,
  ) {
    this.ownerIndex = state.owners.findString(owner);
    this.ownerAccount = state.accounts.findString(owner);
  }

  includesId(accountId: string): boolean {
    const index = this.state.accounts.findString(accountId);
    return index >= 0 && this.state.isOwnedBy(index, this.ownerIndex, this.ownerAccount);
  }

  includesIdField(bytes: Uint8Array, offset: number): boolean {
    const idBytes = this.idBytes;
    this.idWords.fill(0);
    let length = 0;
    for (; length < ID_BYTES_MAX; length++) {
      const byte = bytes[offset + length]!;
      if (byte === 0) break;
      idBytes[length] = byte;
    }
    if (length === 0) return false;
    const index = this.state.accounts.find(this.idWords, 0, length, IdTable.hashOf(this.idWords, 0, length));
    return index >= 0 && this.state.isOwnedBy(index, this.ownerIndex, this.ownerAccount);
  }
}

class PartitionEngine implements Ledger {
  private readonly queue: Command[] = [];
  private queueHead = 0;
  private queueRecords = 0;
  private drainScheduled = false;
  private drainPaused = false;
  private closing = false;
  private closed = false;
  private failure: unknown = undefined;
  private writer!: LogWriter;
  private readonly events = new EventBuffer();
  private readonly scratch = new DecideScratch();
  private readonly outcome = new Outcome();
  private readonly outcomeCounts = new Uint32Array(32);
  private readonly nowMs: () => number;
  private readonly queueRecordsMax: number;
  private readonly logBacklogBytesMax: number;
  private readonly snapshotEveryRecords: number;
  private readonly prepareInWorkerMinRecords: number;
  private readonly preparePieceRecords: number;
  private readonly preparer: BatchPreparer;
  private readonly chainHashName: ChainHashName;
  private batchesPreparedInWorker = 0;
  private position = { segmentFirstSequence: 1, offset: 0 };
  private lastSnapshotSequence = 0;
  private lastSnapshotAtMs = 0;
  /** Automatic snapshots failed in a row since the last one written, and when the next may start. */
  private snapshotFailures = 0;
  private snapshotRetryAtMs = 0;
  private scrub: LogScrub | undefined;
  /** The status when no scrub runs: off until attach finds a snapshot to scrub behind. */
  private logScrubStatus: LogScrubStatus = { state: 'off', bytesChecked: 0, bytesTotal: 0, framesChecked: 0, resumedFromSequence: 1 };
  /** Log frames' memory, reused once the writer has written them (fewer full GCs). */
  readonly framePool = new FramePool();
  private readonly takeFrameBuffer = (bytes: number): Buffer => this.framePool.take(bytes);
  /** The newest snapshot's transaction chunks: the next snapshot writes only entries logged after them. */
  private txnChunks: readonly ChunkRef[] = [];
  private snapshotRunning: Promise<void> | undefined;
  /** Journal blocks handed back by the spool, for the next blocks a journal fills. */
  private readonly spareJournalBlocks: Uint32Array[] = [];
  /** Writes the running journal's blocks into the next snapshot's chunk as they fill (chunk-spool.ts). */
  private readonly spool: ChunkSpool;

  constructor(
    private readonly options: LedgerOptions,
    private readonly state: LedgerState,
    private readonly readIndex: LogReadIndex,
    private readonly unlock: () => void,
  ) {
    this.nowMs = options.nowMs ?? Date.now;
    state.transactionsMax = options.maxTransactions ?? TXN_TABLE_ENTRIES_MAX;
    state.accountsMax = options.maxAccounts ?? ACCOUNTS_MAX;
    this.queueRecordsMax = options.queueRecordsMax ?? QUEUE_RECORDS_MAX_DEFAULT;
    this.logBacklogBytesMax = options.logBacklogBytesMax ?? LOG_BACKLOG_BYTES_MAX_DEFAULT;
    this.snapshotEveryRecords = options.snapshotEveryRecords ?? SNAPSHOT_EVERY_RECORDS_DEFAULT;
    this.prepareInWorkerMinRecords = options.prepareInWorkerMinRecords ?? PREPARE_IN_WORKER_MIN_RECORDS_DEFAULT;
    this.preparePieceRecords = options.preparePieceRecords ?? PREPARE_PIECE_RECORDS_DEFAULT;
    this.preparer = new BatchPreparer(state.accounts, (message) => process.emitWarning(message), options.prepareWorkerUrl, options.prepareSharing ?? true);
    this.chainHashName = options.chainHash === undefined || options.chainHash === 'auto' ? fasterChainHash() : options.chainHash;
    const spoolWorkerUrl = options.chunkSpoolWorkerUrl ?? new URL('./chunk-spool-worker.js', import.meta.url);
    this.spool = new ChunkSpool(dataPaths(options.dataDir).snapshotDir, spoolWorkerUrl, this.spareJournalBlocks, (message) => process.emitWarning(message));
  }

  attach(writer: LogWriter, tail: { firstSequence: number; bytes: number } | undefined, snapshot: SnapshotMeta | undefined): void {
    this.writer = writer;
    this.position = tail === undefined ? { segmentFirstSequence: this.state.headSequence + 1, offset: 0 } : { segmentFirstSequence: tail.firstSequence, offset: tail.bytes };
    this.lastSnapshotSequence = snapshot?.sequence ?? 0;
    this.lastSnapshotAtMs = snapshot?.createdAtMs ?? 0;
    // A version 1 snapshot lists no chunks: the next snapshot writes every entry as one.
    this.txnChunks = snapshot?.txnChunks ?? [];
    this.startLogScrub(snapshot);
    // A chunk the last run was spooling when it stopped holds entries the log has anyway.
    removeOpenChunks(dataPaths(this.options.dataDir).snapshotDir, (message) => process.emitWarning(message));
    // Nothing replayed after the chunks' end: the journal can hold the next snapshot's entries
    // from the start. Otherwise the first snapshot scans for them (and starts the journal).
    if (this.chunksEnd() === this.state.headSequence) this.startJournal();
  }

  /** Checks the frames the snapshot covers (recovery did not read them) on a worker, unless off. */
  private startLogScrub(snapshot: SnapshotMeta | undefined): void {
    const rate = this.options.logScrubBytesPerSecond ?? LOG_SCRUB_BYTES_PER_SECOND_DEFAULT;
    if (rate === 'off') return;
    if (snapshot === undefined || snapshot.sequence === 0) {
      this.logScrubStatus = { ...this.logScrubStatus, state: 'not_needed' };
      return;
    }
    const end = { segmentFirstSequence: snapshot.logSegmentFirstSequence, offset: snapshot.logOffset, sequence: snapshot.sequence, chainHash: snapshot.chainHash };
    const observer = this.options.observer;
    const { logDir, scrubCheckpointPath } = dataPaths(this.options.dataDir);
    this.scrub = new LogScrub(
      { logDir, end, bytesPerSecond: rate, checkpointPath: scrubCheckpointPath },
      {
        onStart: (progress) => observer?.onLogScrubStart?.(snapshot.sequence, progress.resumedFromSequence),
        onEnd: (status) => {
          // Said once: to the observer when there is one (serve logs it), else as a process warning.
          if (observer?.onLogScrubEnd !== undefined) observer.onLogScrubEnd(status);
          else if (status.failure !== undefined) process.emitWarning(`log scrub failed: ${status.failure.message}`);
        },
      },
    );
  }

  logScrub(): LogScrubStatus {
    return this.scrub?.status() ?? this.logScrubStatus;
  }

  /** Journals new entries for the next snapshot, spooling them into its chunk, unless the interval is too long for one. */
  private startJournal(): void {
    const entriesMax = 2 * this.snapshotEveryRecords;
    if (entriesMax > JOURNAL_ENTRIES_MAX) return;
    this.state.txns.startJournal(this.state.headSequence, entriesMax, this.spareJournalBlocks);
    this.spool.begin(this.state.headSequence);
  }

  /** After a drain: the journal's full blocks go to the spool; if it cannot take them, the journal ends (the next snapshot scans). */
  private shipJournalBlocks(): void {
    const journal = this.state.txns.runningJournal;
    if (journal === undefined) return;
    const blocks = journal.takeFullBlocks();
    if (blocks.length > 0 && !this.spool.ship(blocks)) {
      this.state.txns.takeJournal();
      this.spool.drop();
    }
  }

  /** The sequence the newest snapshot's chunks run to: the next chunk holds entries after it. */
  private chunksEnd(): number {
    return this.txnChunks.at(-1)?.toSequence ?? 0;
  }

  /** Where the next frame goes: the log position recorded in snapshots. */
  notePosition(segmentFirstSequence: number, offset: number): void {
    this.position = { segmentFirstSequence, offset };
  }

  fatal(error: unknown): void {
    this.failure = error;
    for (const command of this.queue.splice(this.queueHead)) command.reject(error);
    this.queue.length = 0;
    this.queueHead = 0;
    if (this.options.onFatal !== undefined) this.options.onFatal(error);
    else {
      process.stderr.write(`walletd: fatal log write failure, stopping: ${String(error)}\n`);
      process.exit(70);
    }
  }

  submitTransfers(batch: TransferBatch): Promise<TransferResults> {
    const refused = this.refuse(batch.count);
    if (refused !== undefined) return Promise.reject(refused);
    if (batch.count < 1 || batch.count > BATCH_RECORDS_MAX || batch.bytes.length < batch.count * RECORD_BYTES) {
      return Promise.reject(new WalletError('invalid_request', `a batch holds 1 to ${BATCH_RECORDS_MAX} records of ${RECORD_BYTES} bytes`));
    }
    if (this.splitsForWorker(batch)) return this.submitInPieces(batch);
    return new Promise((resolve, reject) => this.queueTransfers(batch, resolve, reject));
  }

  /** Queues a batch, sent to the prepare worker first when it is large enough and the worker can take it. */
  private queueTransfers(batch: TransferBatch, resolve: (results: TransferResults) => void, reject: (error: unknown) => void): void {
    const command: TransfersCommand = { type: 'transfers', batch, resolve, reject };
    if (batch.count >= this.prepareInWorkerMinRecords && this.preparer.available) {
      command.prepared = this.preparer.prepare(batch, () => this.scheduleDrain());
    }
    this.enqueue(command, batch.count);
  }

  /**
   * Whether a batch goes to the prepare worker in pieces: when it is large and the engine has
   * less than a piece of work queued, it would otherwise sit idle while the worker prepares the
   * whole batch. With work queued the engine is busy anyway, and pieces would only add commands
   * (measured: 5–6% more transfers/s end to end with 2 batches in flight, none lost with 8).
   */
  private splitsForWorker(batch: TransferBatch): boolean {
    const piece = this.preparePieceRecords;
    return batch.count >= 2 * piece && this.queueRecords < piece && this.preparer.available;
  }

  /**
   * A large batch as consecutive batches of preparePieceRecords, queued as any batch is and
   * answered together. Queued at once and in order, they are decided exactly as the whole batch
   * would be; but the engine decides the first piece while the worker prepares the next,
   * instead of waiting for all of it. The first failure rejects the whole (a promise settles once).
   */
  private submitInPieces(batch: TransferBatch): Promise<TransferResults> {
    const size = this.preparePieceRecords;
    const codes = new Uint8Array(batch.count);
    const sequences = new Float64Array(batch.count);
    return new Promise((resolve, reject) => {
      let piecesLeft = Math.ceil(batch.count / size);
      for (let start = 0; start < batch.count; start += size) {
        const count = Math.min(size, batch.count - start);
        const piece: TransferBatch = { bytes: batch.bytes.subarray(start * RECORD_BYTES, (start + count) * RECORD_BYTES), count };
        const answer = (results: TransferResults): void => {
          codes.set(results.codes, start);
          sequences.set(results.sequences, start);
          if (--piecesLeft === 0) resolve({ codes, sequences });
        };
        this.queueTransfers(piece, answer, reject);
      }
    });
  }

  openAccount(request: OpenAccountRequest): Promise<OpenAccountOutcome> {
    const refused = this.refuse(1);
    if (refused !== undefined) return Promise.reject(refused);
    return new Promise((resolve, reject) => this.enqueue({ type: 'open', request, resolve, reject }, 1));
  }

  private refuse(records: number): WalletError | undefined {
    if (this.failure !== undefined) return new WalletError('internal_error', 'the log writer failed; the process must restart');
    if (this.closing) return new WalletError('shutting_down');
    if (this.queueRecords + records > this.queueRecordsMax) return new WalletError('overloaded');
    return undefined;
  }

  private enqueue(command: Command, records: number): void {
    this.queue.push(command);
    this.queueRecords += records;
    this.scheduleDrain();
  }

  /** A group commit landed: deciding may resume if it waited on the log backlog. */
  logCaughtUp(): void {
    this.scheduleDrain();
  }

  private scheduleDrain(): void {
    if (this.drainScheduled || this.drainPaused || this.queueHead === this.queue.length || this.headAwaitsWorker()) return;
    if (this.writer.pendingBytes >= this.logBacklogBytesMax) return; // logCaughtUp resumes it
    this.drainScheduled = true;
    setImmediate(() => this.drain());
  }

  /**
   * Commands are taken in submission order: the queue waits while its head is with the prepare
   * worker, unless a share of it is unclaimed, which the engine prepares itself (drain).
   */
  private headAwaitsWorker(): boolean {
    const head = this.queue[this.queueHead];
    const preparing = head === undefined ? undefined : batchPreparing(head);
    return preparing !== undefined && !this.preparer.canShare(preparing);
  }

  /** Decides every queued command that fits one frame, appends the frame, schedules answers. */
  private drain(): void {
    this.drainScheduled = false;
    if (this.failure !== undefined || this.drainPaused) return;
    const events = this.events;
    events.reset();
    const firstSequence = this.state.headSequence + 1;
    const completions: Completion[] = [];
    const failures: Array<(error: unknown) => void> = [];
    while (this.queueHead < this.queue.length) {
      const command = this.queue[this.queueHead]!;
      // A batch still with the worker: rather than idle, the engine prepares the shares nobody
      // has claimed, but only before deciding anything, so a frame's answers are not held back.
      const preparing = batchPreparing(command);
      if (preparing !== undefined && (events.count > 0 || !this.preparer.share(preparing))) break;
      const records = command.type === 'transfers' ? command.batch.count : 1;
      if (events.count + records + EXTRA_EVENTS_PER_COMMAND_MAX > FRAME_EVENTS_MAX) break;
      if (events.length > FRAME_BODY_BYTES_MAX / 2) break;
      this.queueHead++;
      this.queueRecords -= records;
      completions.push(command.type === 'transfers' ? this.executeTransfers(command) : this.executeOpen(command));
      failures.push(command.reject);
    }
    this.compactQueue();
    this.reportOutcomes();
    const durable = events.count === 0 ? this.writer.flushed() : this.appendFrame(firstSequence);
    durable.then(
      () => completions.forEach((complete) => complete()),
      (error: unknown) => failures.forEach((reject) => reject(error)),
    );
    this.scheduleDrain();
    this.shipJournalBlocks();
    this.maybeSnapshot();
  }

  private appendFrame(firstSequence: number): Promise<void> {
    const events = this.events;
    assert(this.state.headSequence === firstSequence + events.count - 1, 'one sequence per event');
    // Sealed (chain hash, CRCs) on the log writer's thread: the hash reads every logged byte.
    const frame = encodeUnsealedFrame(
      events.bytes,
      events.length,
      events.offsets,
      events.count,
      firstSequence,
      this.nowMs(),
      FRAME_VERSION_OF[this.chainHashName],
      this.takeFrameBuffer,
    );
    return this.writer.append(frame, firstSequence, events.count);
  }

  /** The chain hash of the last durable frame: the head's once every frame is durable (snapshots wait for that). */
  private durableChainHash(): Buffer {
    const chainHash = this.writer.durableChainHash;
    assert(chainHash !== undefined, 'the log writer seals frames');
    return chainHash;
  }

  private compactQueue(): void {
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead > 1024) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
  }

  private executeTransfers(command: TransfersCommand): Completion {
    const { batch, prepared } = command;
    const record = prepared === undefined ? recordView(alignedRecords(batch)) : prepared.records;
    const codes = new Uint8Array(batch.count);
    const sequences = new Float64Array(batch.count);
    const preparedWords = prepared?.status === 'ready' ? prepared.prepared : undefined;
    if (preparedWords !== undefined) this.batchesPreparedInWorker++;
    executeTransferBatch(this.state, record, batch.count, this.events, this.scratch, this.outcome, codes, sequences, preparedWords);
    if (prepared !== undefined) this.preparer.release(prepared);
    for (let index = 0; index < batch.count; index++) this.outcomeCounts[codes[index]!]!++;
    const results: TransferResults = { codes, sequences };
    return () => command.resolve(results);
  }

  private executeOpen(command: OpenCommand): Completion {
    const outcome = this.decideOpen(command.request);
    // The view as decided: once this frame is durable, so is everything it shows. Built at the
    // completion instead, it would include entries decided meanwhile and not durable yet.
    const answer: OpenAccountOutcome = outcome.status === 'rejected' ? outcome : { status: outcome.status, account: this.viewOf(outcome.index)! };
    return () => command.resolve(answer);
  }

  private decideOpen(request: OpenAccountRequest): { status: 'created' | 'exists'; index: number } | Extract<OpenAccountOutcome, { status: 'rejected' }> {
    if (!isValidId(request.accountId) || !isValidId(request.owner)) return { status: 'rejected', code: 'invalid_request' };
    const currency = currencyByCode(request.currencyCode);
    if (currency === undefined) return { status: 'rejected', code: 'unsupported_currency' };
    const existing = this.state.accounts.findString(request.accountId);
    if (existing >= 0) {
      const same = this.state.currencyOf(existing) === currency.numeric && this.state.ownerIdOf(existing) === request.owner;
      return same ? { status: 'exists', index: existing } : { status: 'rejected', code: 'account_exists' };
    }
    if (this.state.customerAccountCount >= this.state.accountsMax) return { status: 'rejected', code: 'ledger_full' };
    const size = ACCOUNT_OPENED_FIXED_BYTES + request.accountId.length + request.owner.length;
    const at = this.events.begin(size);
    this.events.commit(encodeAccountOpened(this.events.bytes, at, request.accountId, currency.numeric, request.owner));
    const index = this.state.applyAccountOpened(this.state.headSequence + 1, request.accountId, currency.numeric, request.owner);
    return { status: 'created', index };
  }

  private reportOutcomes(): void {
    const observer = this.options.observer;
    for (let code = 0; code < this.outcomeCounts.length; code++) {
      const count = this.outcomeCounts[code]!;
      if (count === 0) continue;
      observer?.onOutcome?.(code, count);
      this.outcomeCounts[code] = 0;
    }
  }

  async sync(): Promise<void> {
    await this.writer.flushed();
  }

  /** Resolves once the log is durable up to `sequence`, a position the state has applied. */
  durable(sequence: number): Promise<void> {
    assert(sequence <= this.state.headSequence, 'durable() of a position not applied yet');
    // An applied event's frame was appended in the drain that applied it, so a group commit
    // will cover it.
    return this.writer.durableThrough(sequence);
  }

  async durableAccount(accountId: string): Promise<AccountView | undefined> {
    const index = this.state.accounts.findString(accountId);
    if (index < 0) return undefined;
    const view = this.viewOf(index);
    await this.durable(this.shownPosition(index));
    return view;
  }

  /**
   * The log position an account's reads shown now must wait for: its newest entry, which covers
   * its opening too (the log is durable as a prefix); with no entry yet, everything applied, as
   * the state does not keep its opening's position.
   */
  private shownPosition(index: number): number {
    const newest = this.state.lastEntrySequenceOf(index);
    return newest === 0 ? this.state.headSequence : newest;
  }

  account(accountId: string): AccountView | undefined {
    const index = this.state.accounts.findString(accountId);
    return index < 0 ? undefined : this.viewOf(index);
  }

  hasAccount(accountId: string): boolean {
    return this.state.accounts.findString(accountId) >= 0;
  }

  ownerOf(accountId: string): string | undefined {
    const index = this.state.accounts.findString(accountId);
    return index < 0 || this.state.isExternal(index) ? undefined : this.state.ownerIdOf(index);
  }

  accountsOwnedBy(owner: string): OwnedAccounts {
    return new IndexedOwnedAccounts(this.state, owner);
  }

  private viewOf(index: number): AccountView | undefined {
    const currency = currencyByNumeric(this.state.currencyOf(index));
    if (currency === undefined) return undefined;
    return {
      accountId: this.state.accounts.idOf(index),
      currency,
      owner: this.state.ownerIdOf(index),
      balance: this.state.balanceOf(index),
      sequence: this.state.lastEntrySequenceOf(index),
    };
  }

  async transfer(transactionId: string): Promise<TransferView | undefined> {
    if (!isValidId(transactionId)) return undefined;
    const key = this.scratch.key;
    fingerprintTransactionId(transactionId, key);
    const slot = this.state.txns.find(key[0]!, key[1]!, key[2]!);
    if (slot < 0) return undefined;
    const sequence = this.state.txns.sequenceAt(slot);
    await this.durable(sequence);
    const read = this.readIndex.read(sequence);
    if (read === undefined || read.event.type !== 2) return undefined;
    // The fingerprint matched; the full id from the log settles it.
    if (read.event.transactionId !== transactionId) return undefined;
    return this.transferViewOf(read.event, sequence, read.atMs);
  }

  private transferViewOf(event: TransferRecordedEvent, sequence: number, atMs: number): TransferView {
    const currency = currencyByNumeric(event.currencyNumeric);
    assert(currency !== undefined, 'logged transfer with unknown currency');
    return {
      transactionId: event.transactionId,
      kind: KIND_NAMES[event.kind] ?? 'transfer',
      fromAccount: this.accountIdOf(event.fromIndex, event.fromInline),
      toAccount: this.accountIdOf(event.toIndex, event.toInline),
      amount: event.amount,
      currency,
      code: codeOfWire(event.code) ?? 'internal_error',
      sequence,
      atMs,
    };
  }

  private accountIdOf(index: number, inline: string): string {
    return index === NO_INDEX ? inline : this.state.accounts.idOf(index);
  }

  async balanceAt(accountId: string, query: BalanceQuery): Promise<HistoricalBalance> {
    const index = this.state.accounts.findString(accountId);
    if (index < 0) return { status: 'account_not_found' };
    // Read now, answer once durable: frames decided while the sync waits are in the state after
    // it, and neither their balance nor their position may be shown before they are durable;
    // nor may a walk start at their entries (their frames may not even be written yet).
    const now = { balance: this.state.balanceOf(index), sequence: this.state.headSequence, newestEntry: this.state.lastEntrySequenceOf(index) };
    await this.durable(now.sequence);
    const currency = currencyByNumeric(this.state.currencyOf(index))!;
    if ('sequence' in query && typeof query.sequence === 'number') {
      if (query.sequence > now.sequence || query.sequence < 0) return { status: 'beyond_head' };
      const entry = this.walkBack(index, now.newestEntry, (read) => read.sequence <= query.sequence);
      return { status: 'ok', accountId, currency, balance: entry?.balance ?? 0n, sequence: query.sequence };
    }
    if ('atMs' in query && typeof query.atMs === 'number') {
      const entry = this.walkBack(index, now.newestEntry, (read) => read.atMs <= query.atMs);
      return { status: 'ok', accountId, currency, balance: entry?.balance ?? 0n, sequence: entry?.sequence ?? 0 };
    }
    return { status: 'ok', accountId, currency, balance: now.balance, sequence: now.sequence };
  }

  /** The account's statement entry at `sequence`, and the sequence of the entry before it. */
  private entryAt(index: number, sequence: number): ChainEntry {
    const read = this.readIndex.read(sequence);
    assert(read !== undefined && read.event.type === 2, `statement chain broken at sequence ${sequence}`);
    const event = read.event;
    const isDebit = event.fromIndex === index;
    assert(isDebit || event.toIndex === index, `sequence ${sequence} is not an entry of account ${index}`);
    return {
      event,
      atMs: read.atMs,
      isDebit,
      balanceAfter: isDebit ? event.fromBalanceAfter : event.toBalanceAfter,
      previous: isDebit ? event.fromPreviousSequence : event.toPreviousSequence,
    };
  }

  /** Follows the account's entry chain from `newest` (an entry read before a sync) to the oldest until `accept` holds. */
  private walkBack(index: number, newest: number, accept: (read: { sequence: number; atMs: number }) => boolean): { sequence: number; balance: bigint } | undefined {
    for (let sequence = newest; sequence > 0; ) {
      const entry = this.entryAt(index, sequence);
      if (accept({ sequence, atMs: entry.atMs })) return { sequence, balance: entry.balanceAfter };
      sequence = entry.previous;
    }
    return undefined;
  }

  async statement(accountId: string, limit: number, beforeSequence?: number): Promise<Statement | undefined> {
    assert(Number.isInteger(limit) && limit >= 1 && limit <= STATEMENT_LIMIT_MAX, 'statement limit out of range');
    const index = this.state.accounts.findString(accountId);
    if (index < 0) return undefined;
    // The newest entry now: after the wait it is durable (and so is the opening, even with no
    // entry yet), and the walk never starts above it (entries decided meanwhile may not even be
    // written yet).
    const newest = this.state.lastEntrySequenceOf(index);
    await this.durable(this.shownPosition(index));
    let sequence = beforeSequence === undefined || beforeSequence > newest ? newest : this.entryBefore(index, beforeSequence, newest);
    const entries: StatementEntry[] = [];
    while (sequence > 0 && entries.length < limit) {
      const entry = this.entryAt(index, sequence);
      entries.push({
        transactionId: entry.event.transactionId,
        amount: entry.event.amount,
        direction: entry.isDebit ? 'debit' : 'credit',
        balanceAfter: entry.balanceAfter,
        sequence,
        atMs: entry.atMs,
      });
      sequence = entry.previous;
    }
    const last = entries[entries.length - 1];
    return { entries, nextBeforeSequence: sequence > 0 && last !== undefined ? last.sequence : null };
  }

  /** The newest entry of the account older than `beforeSequence` (a page cursor, at most `newest`). */
  private entryBefore(index: number, beforeSequence: number, newest: number): number {
    const read = this.readIndex.read(beforeSequence);
    if (read !== undefined && read.event.type === 2 && (read.event.fromIndex === index || read.event.toIndex === index)) {
      return this.entryAt(index, beforeSequence).previous;
    }
    let sequence = newest;
    while (sequence >= beforeSequence && sequence > 0) sequence = this.entryAt(index, sequence).previous;
    return sequence;
  }

  stats(): EngineStats {
    return {
      headSequence: this.state.headSequence,
      durableSequence: this.writer.durableSequence,
      accounts: this.state.accountCount,
      transactions: this.state.txns.count,
      transactionsMax: this.state.transactionsMax,
      customerAccounts: this.state.customerAccountCount,
      accountsMax: this.state.accountsMax,
      logBytes: this.writer.totalBytes,
      queueRecords: this.queueRecords,
      lastSnapshotSequence: this.lastSnapshotSequence,
      lastSnapshotAtMs: this.lastSnapshotAtMs,
      snapshotFailures: this.snapshotFailures,
      stateBytes: this.state.memoryBytes(),
      batchesPreparedInWorker: this.batchesPreparedInWorker,
      recordsSharedByEngine: this.preparer.recordsSharedByEngine,
      chainHash: this.chainHashName,
    };
  }

  memoryDetail(): { accountBytes: number; transactionBytes: number } {
    const transactionBytes = this.state.txns.memoryBytes();
    return { accountBytes: this.state.memoryBytes() - transactionBytes, transactionBytes };
  }

  digest(): string {
    return stateDigest(this.state);
  }

  private maybeSnapshot(): void {
    if (this.snapshotRunning !== undefined || this.closing) return;
    if (this.state.headSequence - this.lastSnapshotSequence < this.snapshotEveryRecords) return;
    if (this.nowMs() < this.snapshotRetryAtMs) return;
    void this.snapshot().catch((error: unknown) => this.snapshotFailed(error));
  }

  /** An automatic snapshot failed: said once, and the next attempt waits (SNAPSHOT_RETRY_FIRST_MS). */
  private snapshotFailed(error: unknown): void {
    if (error instanceof SnapshotAbandoned) {
      process.emitWarning(error.message); // not a failure: the next drain tries again
      return;
    }
    this.snapshotFailures++;
    const waitMs = Math.min(SNAPSHOT_RETRY_MAX_MS, SNAPSHOT_RETRY_FIRST_MS * 2 ** (this.snapshotFailures - 1));
    this.snapshotRetryAtMs = this.nowMs() + waitMs;
    process.emitWarning(`snapshot failed (${this.snapshotFailures} in a row): ${String(error)}; the next attempt in ${waitMs / 1000} s`);
  }

  /** Captures the state now (between drains, so at a frame boundary) and commits it once durable. */
  async snapshot(): Promise<void> {
    // One that is already running is not this call's: its failure (reported where it was started)
    // must not fail this one, nor a close() that takes its final snapshot after it.
    while (this.snapshotRunning !== undefined) await this.snapshotRunning.catch(() => undefined);
    const run = this.snapshotOnce();
    this.snapshotRunning = run;
    try {
      await run;
    } finally {
      this.snapshotRunning = undefined;
    }
  }

  /**
   * Pauses deciding, waits until every appended frame is durable (so the state is exactly the
   * log up to the head, at a frame boundary), begins a capture of the account records, takes
   * the journal of the transaction entries logged since the last snapshot's chunks (when one
   * covers them) and has the spool seal their chunk, starts a new journal and chunk, resumes.
   * Nothing is copied in the pause. A worker thread then writes the file: the ids shared, the
   * records as the capture hands them out a piece at a time between drains (keeping the old
   * bytes of records that change before their piece goes), the new entries' chunk as sealed or,
   * without one, scanned from the table under a hold; the file is renamed into place.
   */
  private async snapshotOnce(): Promise<void> {
    const started = performance.now();
    const { snapshotDir } = dataPaths(this.options.dataDir);
    this.drainPaused = true;
    let parts: AccountIdParts;
    let capture: RecordsCapture;
    /** The journal's chunk being sealed by the spool (undefined if that failed), or 'none' when the journal saw nothing since the chunks' end. */
    let journaled: Promise<ChunkRef | undefined> | 'none' | undefined;
    let position: SnapshotPosition;
    /** Where the last snapshot's chunks end: the new chunk holds the entries after it. */
    let after: number;
    /** Entries logged since the last snapshot's chunks end: what the new chunk holds. */
    let newCount: number;
    try {
      await this.writer.flushed();
      assert(this.writer.durableSequence === this.state.headSequence, 'snapshot capture with frames still queued');
      parts = captureAccountIdParts(this.state);
      capture = new RecordsCapture(this.state.headSequence, this.state.accountCount, this.options.snapshotPieceAccounts);
      this.state.recordsCapture = capture;
      const txns = this.state.txns;
      after = this.chunksEnd();
      newCount = txns.count - this.txnChunks.reduce((sum, chunk) => sum + chunk.count, 0);
      const journal = txns.takeJournal();
      if (journal !== undefined && journal.afterSequence === after && this.spool.spooling) {
        assert(journal.count === newCount, 'the journal holds every entry logged since the chunks end');
        if (after === this.state.headSequence) journaled = 'none';
        // Answered before the records are all out, perhaps: a failure is taken at once (no unhandled rejection) and means a scan.
        else
          journaled = this.spool.seal(journal.rest(), this.state.headSequence, journal.count).catch((error: unknown) => {
            process.emitWarning(`${(error as Error).message}; this snapshot scans the transaction table instead`);
            return undefined;
          });
      }
      this.startJournal(); // its spool.begin drops the chunk spooled so far unless it was sealed
      position = {
        chainHash: this.durableChainHash().toString('hex'),
        logSegmentFirstSequence: this.position.segmentFirstSequence,
        logOffset: this.position.offset,
        nowMs: this.nowMs(),
      };
    } catch (error) {
      // A capture left installed would keep every changed record's bytes for good.
      this.state.recordsCapture = undefined;
      throw error;
    } finally {
      this.drainPaused = false;
      this.scheduleDrain();
    }
    // Without a journal the worker scans the table, under a hold taken only when the records are
    // all out: entries logged since the capture are filtered out by sequence, and until the
    // scan, growths may copy as usual. The worker scans and writes in one synchronous step, so a
    // hold that breaks cannot stop it; its outcome is discarded below.
    let hold: EntriesHold | undefined;
    const toSequence = parts.headSequence;
    let entriesFrom: 'journal' | 'scan' = journaled === undefined ? 'scan' : 'journal';
    const takeEntries = async (): Promise<NewEntries> => {
      if (journaled === 'none') return { sources: [], afterSequence: after, toSequence, count: 0 };
      const sealed = await journaled;
      if (sealed !== undefined) return { sealed, afterSequence: after, toSequence };
      entriesFrom = 'scan';
      hold = this.state.txns.holdEntries();
      return { sources: hold.sources, afterSequence: after, toSequence, count: newCount };
    };
    let written: WrittenSnapshot | undefined;
    let failure: unknown;
    try {
      written = await writeSnapshotInWorker({
        dir: snapshotDir,
        parts,
        position,
        capture,
        state: this.state,
        takeEntries,
        chunks: this.txnChunks,
        buffers: this.options.snapshotPiecesInFlight ?? CAPTURE_BUFFERS,
        workerUrl: this.options.snapshotWorkerUrl ?? new URL('./snapshot-worker.js', import.meta.url),
      });
    } catch (error) {
      failure = error;
    } finally {
      if (this.state.recordsCapture === capture) this.state.recordsCapture = undefined;
      // Written or failed, the worker has stopped reading the held arrays.
      hold?.release();
    }
    // A broken hold voids the scan, whether the worker then failed its count check (it saw
    // entries twice) or wrote a file (a break after its last read is not told apart).
    const abandoned = hold?.broken === true;
    if (abandoned || written === undefined) {
      // Whatever it left is listed by no kept snapshot: its temporary file (a worker that died
      // rather than failed cleanly does not remove it) and a chunk it may have put in place under
      // its final name (a merged one holds up to 96 MiB). Pruned now, as a commit prunes, or
      // failures in a row would fill the disk.
      pruneSnapshotsQuietly(snapshotDir);
      throw abandoned ? new SnapshotAbandoned() : failure;
    }
    commitSnapshotFile(snapshotDir, written.tempPath, parts.headSequence);
    this.snapshotFailures = 0;
    this.snapshotRetryAtMs = 0;
    this.txnChunks = written.chunks;
    this.lastSnapshotSequence = parts.headSequence;
    this.lastSnapshotAtMs = this.nowMs();
    this.options.observer?.onSnapshot?.({
      sequence: parts.headSequence,
      bytes: written.bytes,
      ms: performance.now() - started,
      newEntries: newCount,
      entriesFrom,
      recordsKeptPeak: capture.keptPeak,
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    await this.scrub?.stop(); // first: it would only compete with the final snapshot
    while (this.queueHead < this.queue.length || this.drainScheduled) await new Promise((resolve) => setImmediate(resolve));
    await this.writer.flushed().catch(() => undefined);
    if (this.failure === undefined && this.state.headSequence > this.lastSnapshotSequence) await this.snapshot();
    // After a failure no final snapshot is taken, but one already running must end before the log closes.
    else await this.snapshotRunning?.catch(() => undefined);
    await this.spool.close();
    await this.writer.close();
    await this.preparer.close();
    this.readIndex.close();
    this.unlock();
    this.closed = true;
  }
}
