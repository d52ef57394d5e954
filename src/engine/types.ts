/**
 * The engine's public surface: what the HTTP API, the binary protocol server and the CLI use.
 * Everything here is stable; the implementation behind it (src/engine/ledger.ts) may change.
 */
import type { Currency } from '../core/currency.js';
import type { ErrorCode } from '../core/errors.js';
import type { TransferKind } from '../core/transfer-record.js';
import type { ChainHashName } from '../log/frame.js';

/** `count` fixed-size records (src/core/transfer-record.ts) back to back in `bytes`. */
export type TransferBatch = Readonly<{ bytes: Uint8Array; count: number }>;

/**
 * One result per record, in record order. `codes[i]` is a wire code of src/core/errors.ts
 * (0 = success). `sequences[i]` is the log position of the recorded outcome (success or a
 * logged rejection), or 0 when the record was stopped before the ledger (invalid input,
 * idempotency conflict). A retry of a known transaction returns its original code and sequence.
 */
export type TransferResults = Readonly<{ codes: Uint8Array; sequences: Float64Array }>;

export type AccountView = Readonly<{
  accountId: string;
  currency: Currency;
  owner: string;
  balance: bigint;
  /** Log position the balance reflects (the account's latest event, 0 if none). */
  sequence: number;
}>;

export type OpenAccountRequest = Readonly<{ accountId: string; currencyCode: string; owner: string }>;

export type OpenAccountOutcome =
  | Readonly<{ status: 'created' | 'exists'; account: AccountView }>
  | Readonly<{ status: 'rejected'; code: Extract<ErrorCode, 'account_exists' | 'unsupported_currency' | 'invalid_request' | 'ledger_full'> }>;

export type TransferView = Readonly<{
  transactionId: string;
  kind: TransferKind;
  /** For deposits the external account ('@external:USD'); for withdrawals the `toAccount`. */
  fromAccount: string;
  toAccount: string;
  amount: bigint;
  currency: Currency;
  /** 'ok' or the logged rejection code. */
  code: ErrorCode;
  sequence: number;
  atMs: number;
}>;

export type StatementEntry = Readonly<{
  transactionId: string;
  amount: bigint;
  direction: 'debit' | 'credit';
  balanceAfter: bigint;
  sequence: number;
  atMs: number;
}>;

export type Statement = Readonly<{ entries: StatementEntry[]; nextBeforeSequence: number | null }>;

export type BalanceQuery = Readonly<{ sequence: number } | { atMs: number } | Record<string, never>>;

export type HistoricalBalance =
  | Readonly<{ status: 'ok'; accountId: string; currency: Currency; balance: bigint; sequence: number }>
  | Readonly<{ status: 'account_not_found' }>
  | Readonly<{ status: 'beyond_head' }>;

/**
 * The background check of the log a start's snapshot covers (src/engine/scrub.ts): every frame
 * from the first to the snapshot's position, checksums and hash chain, ending at the
 * snapshot's chain hash.
 */
export type LogScrubStatus = Readonly<{
  /**
   * 'off': disabled; 'not_needed': started without a snapshot, so recovery read every frame;
   * 'stopped': the ledger closed before the scrub ended (no verdict).
   */
  state: 'off' | 'not_needed' | 'running' | 'stopped' | 'passed' | 'failed';
  bytesChecked: number;
  bytesTotal: number;
  framesChecked: number;
  /** The first sequence this scrub read: above 1 when it resumed an interrupted one's checkpoint. */
  resumedFromSequence: number;
  /** When failed: the first problem (a corrupt-log message names file, offset and sequence). */
  failure?: Readonly<{ path: string; offset: number; sequence: number; reason: string; message: string }>;
}>;

/** Observations for metrics; called synchronously on the engine's loop, must be cheap. */
export interface EngineObserver {
  /**
   * The log scrub started, to check the frames up to the start's snapshot at `upToSequence`,
   * from `fromSequence`: 1, or where an interrupted scrub's checkpoint lets it resume.
   */
  onLogScrubStart?(upToSequence: number, fromSequence: number): void;
  /** The log scrub ended: passed, or failed with the first problem it found. */
  onLogScrubEnd?(status: LogScrubStatus): void;
  /** One group commit: log events and frames it made durable, bytes written, fsync time. */
  onFlush?(info: Readonly<{ events: number; frames: number; bytes: number; fsyncMs: number }>): void;
  onOutcome?(wireCode: number, count: number): void;
  /**
   * A snapshot was committed: its sequence, the snapshot file's bytes, the time taken, and the
   * transaction entries its new chunk holds, taken from the journal or found by a table scan,
   * and the most account records kept at once (36 bytes each) because they changed before
   * their piece was handed to the writer.
   */
  onSnapshot?(info: Readonly<{ sequence: number; bytes: number; ms: number; newEntries: number; entriesFrom: 'journal' | 'scan'; recordsKeptPeak: number }>): void;
}

export type EngineStats = Readonly<{
  headSequence: number;
  durableSequence: number;
  accounts: number;
  transactions: number;
  /** The configured limit of remembered transaction ids (maxTransactions). */
  transactionsMax: number;
  /** Accounts opened by customers (accounts minus the currencies' external ones). */
  customerAccounts: number;
  /** The configured limit of customer accounts (maxAccounts). */
  accountsMax: number;
  logBytes: number;
  queueRecords: number;
  lastSnapshotSequence: number;
  lastSnapshotAtMs: number;
  /** Automatic snapshots that failed in a row since the last one written (each retried later, with backoff). */
  snapshotFailures: number;
  /** Bytes held by the in-memory state's typed arrays. */
  stateBytes: number;
  /** Transfer batches, and pieces of split ones, prepared on the prepare worker thread since start (see prepareInWorkerMinRecords). */
  batchesPreparedInWorker: number;
  /**
   * Records of those batches the engine thread prepared itself, in shares the worker had not
   * claimed yet when the engine reached the batch with nothing else to do (prepare-shares.ts).
   */
  recordsSharedByEngine: number;
  /** The chain hash of the frames this ledger writes (LedgerOptions.chainHash). */
  chainHash: ChainHashName;
}>;

/**
 * One owner's accounts, resolved against the state once so that many account ids can be tested
 * by comparing indices, with no string per id (the binary protocol checks every record of an
 * owner's frame). It sees the accounts of the moment it was made: make a new one after an await.
 */
export interface OwnedAccounts {
  /**
   * Whether the account whose id is the NUL-padded 64-byte field at `offset` of `bytes` belongs to
   * the owner; the id is read up to its first NUL, as readId does. Any alignment.
   */
  includesIdField(bytes: Uint8Array, offset: number): boolean;
  /** Whether the account `accountId` belongs to the owner (an unknown or external account does not). */
  includesId(accountId: string): boolean;
}

export interface Ledger {
  /**
   * Queues a batch; resolves once every logged outcome in it is durable (after fsync). The
   * engine reads `batch.bytes` until the promise settles: do not reuse the buffer before then.
   * Rejects with WalletError `overloaded` (queue full), `shutting_down` or `invalid_request`.
   */
  submitTransfers(batch: TransferBatch): Promise<TransferResults>;
  openAccount(request: OpenAccountRequest): Promise<OpenAccountOutcome>;
  /**
   * Resolves once everything applied so far is durable. What was read before the call is then
   * durable; state read after it may already include frames decided meanwhile, so a read shown
   * to a client waits after reading (durableAccount), not before.
   */
  sync(): Promise<void>;
  /**
   * The account as of now, answered once the log is durable up to everything the view shows:
   * until that fsync returns, a crash could still take back an effect (or the opening) it
   * shows. What a client is shown comes from here; `account()` is for checks (existence,
   * owner) made before a command is queued. The other async reads (transfer, balanceAt,
   * statement) wait by themselves.
   */
  durableAccount(accountId: string): Promise<AccountView | undefined>;
  account(accountId: string): AccountView | undefined;
  /** Whether the account (customer or external) exists, without building its view. */
  hasAccount(accountId: string): boolean;
  /** The account's owner id; undefined for an unknown account and for external accounts, which belong to no owner. */
  ownerOf(accountId: string): string | undefined;
  accountsOwnedBy(owner: string): OwnedAccounts;
  transfer(transactionId: string): Promise<TransferView | undefined>;
  balanceAt(accountId: string, query: BalanceQuery): Promise<HistoricalBalance>;
  /** Newest first; `beforeSequence` continues a previous page. */
  statement(accountId: string, limit: number, beforeSequence?: number): Promise<Statement | undefined>;
  stats(): EngineStats;
  /** Where the background check of the history the start's snapshot covers stands. */
  logScrub(): LogScrubStatus;
  /** State digest (hex SHA-256) of the current state, identical for the same log anywhere. */
  digest(): string;
  snapshot(): Promise<void>;
  /** Bytes held by the account structures and by the transaction-id table. */
  memoryDetail(): Readonly<{ accountBytes: number; transactionBytes: number }>;
  /** Stops taking commands, finishes queued ones, writes a final snapshot, closes files. */
  close(): Promise<void>;
}

export type LedgerOptions = Readonly<{
  dataDir: string;
  /** fsync after every group commit (production). false only for tests and benchmarks. */
  fsync?: boolean;
  /** Clock for event timestamps (ms since epoch); injected so runs can be replayed. */
  nowMs?: () => number;
  /** Take a snapshot after this many new log records (default 5,000,000). */
  snapshotEveryRecords?: number;
  /**
   * Accounts per piece of records a snapshot hands its worker (default and most 32,768: 1 MiB).
   * Tests set it small so that transfers land between the pieces.
   */
  snapshotPieceAccounts?: number;
  /** Pieces of records in flight to a snapshot's worker (default 16, at most 64). Tests set 1. */
  snapshotPiecesInFlight?: number;
  /**
   * Transaction ids to size the id table for when the ledger starts empty (default 0: start
   * small and grow; growth is incremental, with no pause, but from 60% load until a growth is
   * copied a second array of twice the slots is held and lookups probe both; see txn-table.ts).
   */
  expectedTransactions?: number;
  /**
   * Most remembered transaction ids (default and bound TXN_TABLE_ENTRIES_MAX, 322,122,547). At
   * the limit a new id is refused as `ledger_full` (nothing logged); retries of remembered ids
   * still answer. Counts rejections too: every logged outcome is remembered.
   */
  maxTransactions?: number;
  /** Most customer accounts (default and bound ACCOUNTS_MAX, 100,000,000); then `ledger_full`. */
  maxAccounts?: number;
  /**
   * Read rate of the log scrub (default LOG_SCRUB_BYTES_PER_SECOND_DEFAULT, 64 MiB/s), or 'off'.
   * After a start from a snapshot, a low-priority worker checks the frames the snapshot covers,
   * which recovery does not read (see src/engine/scrub.ts).
   */
  logScrubBytesPerSecond?: number | 'off';
  /** Most records waiting in the engine queue before submit answers `overloaded`. */
  queueRecordsMax?: number;
  /**
   * Most bytes of decided frames waiting for their fsync (default LOG_BACKLOG_BYTES_MAX_DEFAULT,
   * 256 MiB). Above it the engine stops deciding until a group commit lands, so a slow disk
   * fills the bounded queue (and submit answers `overloaded`) instead of memory.
   */
  logBacklogBytesMax?: number;
  /**
   * Start a new log segment when the next group commit would pass this many bytes (default
   * SEGMENT_BYTES_MAX_DEFAULT, 256 MiB). Tests set it small to exercise segment rollover.
   */
  segmentBytesMax?: number;
  /**
   * Transfer batches of at least this many records are prepared on a worker thread (validation,
   * fingerprints, account lookups; see src/engine/preparer.ts) while the engine thread decides
   * earlier ones (default PREPARE_IN_WORKER_MIN_RECORDS_DEFAULT, 512). Smaller batches, and all
   * batches above BATCH_RECORDS_MAX if set there, are prepared on the engine thread.
   */
  prepareInWorkerMinRecords?: number;
  /**
   * A batch of at least twice this many records, submitted while the engine has less than this
   * many queued, goes to the prepare worker in pieces of this size, so that the engine decides
   * the first while the worker prepares the rest (default PREPARE_PIECE_RECORDS_DEFAULT, 1,024).
   * The outcomes are those of the whole batch.
   */
  preparePieceRecords?: number;
  /**
   * Whether the engine thread, reaching a batch the worker has not finished, prepares the
   * shares of it the worker has not claimed instead of waiting (default true; see
   * src/engine/prepare-shares.ts). Off, the engine waits: for A/B runs, and for tests that
   * need the worker to prepare every batch.
   */
  prepareSharing?: boolean;
  /** The snapshot worker's script (default src/engine/snapshot-worker.ts); for tests of a failing worker. */
  snapshotWorkerUrl?: URL;
  /** The chunk spool worker's script (default src/engine/chunk-spool-worker.ts); for tests of a failing worker. */
  chunkSpoolWorkerUrl?: URL;
  /** The prepare worker's script (default src/engine/prepare-worker.ts); for tests of a failing worker. */
  prepareWorkerUrl?: URL;
  /**
   * The chain hash of the frames this ledger writes: 'auto' (default) times SHA-256 and BLAKE2b
   * once and takes the faster on this CPU (fasterChainHash in src/log/frame.ts). Either is read.
   */
  chainHash?: 'auto' | ChainHashName;
  observer?: EngineObserver;
  /** Called with progress while recovering (records replayed, total estimate). */
  onRecoveryProgress?: (done: number, total: number) => void;
  /**
   * Called when a log write or fsync fails. The state is then ahead of the disk, so the
   * default is to stop the process (exit code 70); a restart recovers from the log.
   */
  onFatal?: (error: unknown) => void;
}>;
