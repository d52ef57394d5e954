/**
 * Prometheus metrics of the HTTP front end and the engine behind it.
 *
 * Engine figures arrive two ways: per-event through the `EngineObserver` hooks (outcomes,
 * flushes, fsync latency, snapshots), and as levels read from `ledger.stats()` at scrape time
 * (log size, sequences, queue depth, snapshot age). Everything lives in one private registry so
 * two servers in one process (tests) do not share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { codeOfWire } from '../core/errors.js';
import type { EngineObserver, EngineStats, LogScrubStatus } from '../engine/types.js';

const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];
const FSYNC_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8190, 16384, 65536];

export class ApiMetrics {
  readonly registry = new Registry();
  private readonly requestSeconds: Histogram<'method' | 'route' | 'status'>;
  private readonly transfersByOutcome: Counter<'outcome'>;
  private readonly flushRecords: Histogram;
  private readonly flushFrames: Histogram;
  private readonly fsyncSeconds: Histogram;
  private readonly snapshotSeconds: Histogram;
  private readonly snapshotRecordsKept: Gauge;
  private readonly coalescedRecords: Histogram<'source'>;
  private readonly ready: Gauge;
  private readonly requestSecondsByLabels = new Map<string, { observe(value: number): void }>();
  /** Set once the ledger is open; read at scrape time. */
  private statsSource: (() => EngineStats) | undefined;
  private logScrubSource: (() => LogScrubStatus) | undefined;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'walletd_' });
    this.requestSeconds = new Histogram({
      name: 'walletd_http_request_duration_seconds',
      help: 'HTTP request latency by route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.transfersByOutcome = new Counter({
      name: 'walletd_transfers_total',
      help: 'Transfer records decided by the engine, by outcome code (ok or a rejection code)',
      labelNames: ['outcome'],
      registers,
    });
    this.flushRecords = new Histogram({ name: 'walletd_engine_flush_records', help: 'Log records per group commit', buckets: BATCH_BUCKETS, registers });
    this.flushFrames = new Histogram({ name: 'walletd_engine_flush_frames', help: 'Log frames per group commit', buckets: BATCH_BUCKETS, registers });
    this.fsyncSeconds = new Histogram({ name: 'walletd_engine_fsync_seconds', help: 'fsync latency of a group commit', buckets: FSYNC_BUCKETS_SECONDS, registers });
    this.snapshotSeconds = new Histogram({ name: 'walletd_engine_snapshot_seconds', help: 'Time to write a snapshot', buckets: LATENCY_BUCKETS_SECONDS, registers });
    this.snapshotRecordsKept = new Gauge({
      name: 'walletd_snapshot_records_kept',
      help: 'The most account records the newest snapshot kept at once (36 bytes each) because they changed before it wrote them',
      registers,
    });
    this.coalescedRecords = new Histogram({
      name: 'walletd_http_submit_records',
      help: 'Records per engine submit from HTTP: coalesced single transfers, or one batch request',
      labelNames: ['source'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.ready = new Gauge({ name: 'walletd_ready', help: '1 when the ledger is open and accepting writes', registers });
    this.registerStatsGauges(registers);
    this.registerLogScrubGauges(registers);
  }

  private registerLogScrubGauges(registers: Registry[]): void {
    const fromScrub = (name: string, help: string, read: (status: LogScrubStatus) => number): void =>
      scrapedGauge(registers, name, help, () => this.logScrubSource?.(), read);
    fromScrub('walletd_log_scrub_checked_bytes', "Log bytes the scrub has checked (the frames the start's snapshot covers)", (s) => s.bytesChecked);
    fromScrub('walletd_log_scrub_total_bytes', 'Log bytes the scrub checks in all (0 when it is off or not needed; from its checkpoint on when it resumed)', (s) => s.bytesTotal);
    fromScrub('walletd_log_scrub_resumed_from_sequence', 'First sequence the scrub read: above 1 when it resumed where an interrupted scrub left off', (s) => s.resumedFromSequence);
    fromScrub('walletd_log_scrub_failed', '1 when the log scrub found a damaged frame or a broken hash chain (logged with file and offset), or its worker failed (logged without a file)', (s) => (s.state === 'failed' ? 1 : 0));
  }

  private registerStatsGauges(registers: Registry[]): void {
    const fromStats = (name: string, help: string, read: (stats: EngineStats) => number): void =>
      scrapedGauge(registers, name, help, () => this.statsSource?.(), read);
    fromStats('walletd_log_bytes', 'Size of the log on disk', (s) => s.logBytes);
    fromStats('walletd_head_sequence', 'Newest log position', (s) => s.headSequence);
    fromStats('walletd_durable_sequence', 'Newest fsynced log position', (s) => s.durableSequence);
    fromStats('walletd_accounts', 'Accounts in the ledger', (s) => s.accounts);
    fromStats('walletd_transactions', 'Remembered transaction ids', (s) => s.transactions);
    fromStats('walletd_transactions_max', 'Limit of remembered transaction ids; new ids beyond it are refused as ledger_full', (s) => s.transactionsMax);
    fromStats('walletd_customer_accounts', 'Accounts opened by customers (all but the external ones)', (s) => s.customerAccounts);
    fromStats('walletd_customer_accounts_max', 'Limit of customer accounts; openings beyond it are refused as ledger_full', (s) => s.accountsMax);
    fromStats('walletd_engine_queue_records', 'Records waiting in the engine queue', (s) => s.queueRecords);
    fromStats('walletd_engine_batches_prepared_in_worker', 'Transfer batches (and pieces) prepared on the prepare worker since start; flat under load means the worker is gone', (s) => s.batchesPreparedInWorker);
    fromStats('walletd_engine_records_shared_by_engine', "Records of those batches the engine thread prepared itself, reaching a batch the worker had not finished, since start", (s) => s.recordsSharedByEngine);
    fromStats('walletd_last_snapshot_sequence', 'Log position of the newest snapshot', (s) => s.lastSnapshotSequence);
    fromStats('walletd_snapshot_failures', 'Automatic snapshots failed in a row since the newest was written (retried with backoff)', (s) => s.snapshotFailures);
    fromStats('walletd_snapshot_age_seconds', 'Seconds since the newest snapshot was written (since start when none)', (s) =>
      s.lastSnapshotAtMs > 0 ? (Date.now() - s.lastSnapshotAtMs) / 1000 : process.uptime(),
    );
  }

  /** The observer handed to `openLedger`: called on the engine's loop, so only cheap updates. */
  readonly engineObserver: EngineObserver = {
    onOutcome: (wireCode, count) => {
      this.transfersByOutcome.inc({ outcome: codeOfWire(wireCode) ?? `wire_${wireCode}` }, count);
    },
    onFlush: (info) => {
      this.flushRecords.observe(info.events);
      this.flushFrames.observe(info.frames);
      this.fsyncSeconds.observe(info.fsyncMs / 1000);
    },
    onSnapshot: (info) => {
      this.snapshotSeconds.observe(info.ms / 1000);
      this.snapshotRecordsKept.set(info.recordsKeptPeak);
    },
  };

  attachStats(source: () => EngineStats): void {
    this.statsSource = source;
  }

  attachLogScrub(source: () => LogScrubStatus): void {
    this.logScrubSource = source;
  }

  setReady(ready: boolean): void {
    this.ready.set(ready ? 1 : 0);
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    // Children are cached: resolving labels costs more than the observation itself. The key
    // space is bounded by routes × methods × statuses (unmatched URLs share one route label).
    const key = `${method} ${route} ${status}`;
    let child = this.requestSecondsByLabels.get(key);
    if (child === undefined) {
      child = this.requestSeconds.labels({ method, route, status: String(status) });
      this.requestSecondsByLabels.set(key, child);
    }
    child.observe(seconds);
  }

  observeSubmit(source: 'coalesced' | 'batch' | 'single', records: number): void {
    this.coalescedRecords.observe({ source }, records);
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** A gauge read at scrape time from `source` (undefined until the ledger is open: then it keeps its last value). */
function scrapedGauge<T>(registers: Registry[], name: string, help: string, source: () => T | undefined, read: (value: T) => number): void {
  new Gauge({
    name,
    help,
    registers,
    collect() {
      const value = source();
      if (value !== undefined) this.set(read(value));
    },
  });
}
