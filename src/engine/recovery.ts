/**
 * Recovery: newest valid snapshot, then replay of every frame after it, checking checksums, the
 * sequence and the hash chain. A torn tail (an append cut short by a crash, never acknowledged)
 * is cut off; anything else wrong stops the start with the file and offset named. Recovery
 * reads only the snapshot and the log after it, so its time does not grow with total history.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LedgerState } from '../core/ledger-state.js';
import { TRANSFER_FIXED_BYTES } from '../core/events.js';
import { TXN_TABLE_ENTRIES_MAX, TxnTable } from '../core/txn-table.js';
import { applyFrameBody, ReplayScratch } from '../core/replay.js';
import { GENESIS_CHAIN_HASH } from '../log/frame.js';
import { checkFramesBeforeNewest, checkSegmentName, CorruptLogError, scanSegment, type ScanContext } from '../log/scan.js';
import { listSegments, type SegmentFile } from '../log/segments.js';
import { listSnapshots, loadSnapshot, type SnapshotMeta } from './snapshot.js';

export type RecoveryResult = {
  state: LedgerState;
  chainHash: Buffer;
  /** The segment to append to and its valid length (after any torn tail), if any exists. */
  tail: { firstSequence: number; bytes: number } | undefined;
  snapshot: SnapshotMeta | undefined;
  tornTail: { path: string; offset: number; reason: string } | undefined;
  replayedEvents: number;
};

export type RecoveryOptions = Readonly<{
  /** Stop replay after this sequence (offline history queries). */
  toSequence?: number;
  /** Stop replay before the first frame stamped later than this (ms since the epoch). */
  toTimeMs?: number;
  /** Skip snapshots and replay the whole log from the first record. */
  fromGenesis?: boolean;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** Called after each frame is applied (verify uses it to compare digests at snapshots). */
  onFrameApplied?: (state: LedgerState) => void;
  warn?: (message: string) => void;
  /** Size the transaction table for this many ids when starting without a snapshot. */
  expectedTransactions?: number;
}>;

/** Where an interrupted log scrub resumes (scrub.ts), in the data directory. */
const SCRUB_CHECKPOINT_FILE = 'scrub-checkpoint';

export function dataPaths(dataDir: string): { logDir: string; snapshotDir: string; scrubCheckpointPath: string } {
  return { logDir: join(dataDir, 'log'), snapshotDir: join(dataDir, 'snapshots'), scrubCheckpointPath: join(dataDir, SCRUB_CHECKPOINT_FILE) };
}

export function ensureDataDirs(dataDir: string): void {
  const { logDir, snapshotDir } = dataPaths(dataDir);
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  mkdirSync(snapshotDir, { recursive: true, mode: 0o700 });
}

export function recover(dataDir: string, options: RecoveryOptions = {}): RecoveryResult {
  const { logDir, snapshotDir } = dataPaths(dataDir);
  const segments = listSegments(logDir);
  const sizes = segmentSizes(segments);
  // The table is sized for every id the replay may meet, so the replay never grows it.
  const eventsMax = eventsAtMost(segments, sizes, options.toSequence);
  const snapshot = options.fromGenesis === true ? undefined : newestUsableSnapshot(snapshotDir, options, eventsMax);
  const state = snapshot?.state ?? new LedgerState(undefined, undefined, new TxnTable(Math.max(options.expectedTransactions ?? 0, eventsMax)));
  const context: ScanContext = {
    chainHash: snapshot === undefined ? GENESIS_CHAIN_HASH : Buffer.from(snapshot.meta.chainHash, 'hex'),
    nextSequence: state.headSequence + 1,
  };
  const start = startPosition(segments, sizes, snapshot?.meta);
  const result: RecoveryResult = { state, chainHash: context.chainHash, tail: undefined, snapshot: snapshot?.meta, tornTail: undefined, replayedEvents: 0 };
  replaySegments(segments, sizes, start, context, result, options);
  result.chainHash = context.chainHash;
  return result;
}

/** The fewest bytes a transaction id takes in a frame body: a transfer event with a 1-byte id, and its offset. */
const TRANSFER_EVENT_BYTES_MIN = TRANSFER_FIXED_BYTES + 1 + 4;

/**
 * An upper bound on the events of the log, up to `toSequence`, and so on the transaction ids a
 * replay meets: the segments before the last hold the events numbered below the last one's
 * first sequence, and the last holds at most one per TRANSFER_EVENT_BYTES_MIN bytes. Recovery
 * sizes the transaction table with it (from the first record: for all of them; after a
 * snapshot: its ids plus the events after it), so a replay never grows the table: a growth
 * copies every entry and keeps two arrays while it does (on 11.6M logged events, `walletd
 * replay` took 18.0–20.2 s and 1.31 GB without, 13.3–14.4 s and 1.04–1.06 GB with). From the
 * first record the bound counts account openings as ids, so the table may be one size larger
 * than growing would have made it.
 */
export function transactionIdsAtMost(dataDir: string, toSequence?: number): number {
  const segments = listSegments(dataPaths(dataDir).logDir);
  return eventsAtMost(segments, segmentSizes(segments), toSequence);
}

function segmentSizes(segments: readonly SegmentFile[]): number[] {
  return segments.map((segment) => statSync(segment.path).size);
}

function eventsAtMost(segments: readonly SegmentFile[], sizes: readonly number[], toSequence: number | undefined): number {
  const last = segments.at(-1);
  if (last === undefined) return 0;
  const events = last.firstSequence - 1 + Math.floor((sizes.at(-1) ?? 0) / TRANSFER_EVENT_BYTES_MIN);
  return Math.min(events, toSequence ?? Number.MAX_SAFE_INTEGER, TXN_TABLE_ENTRIES_MAX);
}

function newestUsableSnapshot(dir: string, options: RecoveryOptions, eventsMax: number): ReturnType<typeof loadSnapshot> | undefined {
  for (const candidate of listSnapshots(dir)) {
    if (options.toSequence !== undefined && candidate.sequence > options.toSequence) continue;
    if (options.toTimeMs !== undefined) continue; // snapshots carry no event time: replay from the start
    try {
      return loadSnapshot(candidate.path, eventsMax);
    } catch (error) {
      options.warn?.(`ignoring snapshot ${candidate.path}: ${(error as Error).message}`);
    }
  }
  return undefined;
}

function startPosition(segments: SegmentFile[], sizes: readonly number[], meta: SnapshotMeta | undefined): { index: number; offset: number } {
  if (meta === undefined || meta.sequence === 0) return { index: 0, offset: 0 };
  const index = segments.findIndex((segment) => segment.firstSequence === meta.logSegmentFirstSequence);
  if (index === -1) {
    throw new CorruptLogError(`segment starting at sequence ${meta.logSegmentFirstSequence}`, meta.logOffset, meta.sequence, 'the snapshot refers to a log segment that is missing');
  }
  // The snapshot was written only once the log was durable up to its position, so a shorter
  // segment lost frames it covers: not a torn tail (the writer would pad the gap with zeros).
  const size = sizes[index]!;
  if (size < meta.logOffset) {
    throw new CorruptLogError(segments[index]!.path, size, meta.sequence, `the log ends before the snapshot's position (byte offset ${meta.logOffset}); frames the snapshot covers are missing`);
  }
  return { index, offset: meta.logOffset };
}

function replaySegments(
  segments: SegmentFile[],
  sizes: readonly number[],
  start: { index: number; offset: number },
  context: ScanContext,
  result: RecoveryResult,
  options: RecoveryOptions,
): void {
  const scratch = new ReplayScratch();
  const bytesTotal = sizes.slice(start.index).reduce((sum, size) => sum + size, 0) - start.offset;
  let bytesBefore = 0;
  let lastProgressMs = 0;
  for (let index = start.index; index < segments.length; index++) {
    const segment = segments[index]!;
    const isLast = index === segments.length - 1;
    const offset = index === start.index ? start.offset : 0;
    let stopped = false;
    if (offset === 0) checkSegmentName(segment, context.nextSequence);
    const end = scanSegment(segment.path, offset, isLast, context, (header, body, frameOffset) => {
      const pastTime = options.toTimeMs !== undefined && header.timestampMs > options.toTimeMs;
      if (stopped || pastTime || (options.toSequence !== undefined && header.firstSequence > options.toSequence)) {
        stopped = true;
        return;
      }
      const wanted = options.toSequence === undefined ? header.eventCount : Math.min(header.eventCount, options.toSequence - header.firstSequence + 1);
      applyFrameBody(result.state, body, header.eventCount, header.firstSequence, scratch, wanted);
      result.replayedEvents += wanted;
      if (wanted < header.eventCount) stopped = true;
      options.onFrameApplied?.(result.state);
      const now = Date.now();
      if (options.onProgress !== undefined && now - lastProgressMs >= 200) {
        lastProgressMs = now;
        options.onProgress(bytesBefore + frameOffset - offset, bytesTotal);
      }
    });
    if (offset === 0) checkFramesBeforeNewest(segment, end.endOffset, isLast, context.nextSequence);
    bytesBefore += sizes[index]! - offset;
    if (end.kind === 'torn') result.tornTail = { path: segment.path, offset: end.endOffset, reason: end.reason };
    if (isLast) result.tail = { firstSequence: segment.firstSequence, bytes: end.endOffset };
    if (stopped) break;
  }
  options.onProgress?.(bytesTotal, bytesTotal);
}
