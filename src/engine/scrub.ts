/**
 * Log scrub: the check that start leaves out. Recovery reads only the newest snapshot and the
 * frames after it (its time must not grow with history), so a byte flipped in a frame the
 * snapshot covers would go unseen until someone ran `walletd verify`. After start, a worker
 * thread (scrub-worker.ts, at low priority and a bounded read rate) reads every frame from the
 * first one to the snapshot's position and checks what recovery checks (header and body CRC,
 * sequence continuity, the hash chain), then that the chain it computed ends at the snapshot's
 * own chain hash and sequence: the covered history is then exactly the history the snapshot's
 * state was built from.
 *
 * It does not replay (the snapshot's digest already vouches for the state), so it costs a read
 * and a hash per byte. Only durable, immutable bytes are read: whole older segments and the
 * snapshot's segment up to the snapshot's offset, while the writer appends beyond it.
 *
 * A scrub of a long history takes hours at its bounded rate, and a restart would begin it again
 * from the first frame: it could then never finish under regular deploys. So after each whole
 * segment it checked it records a checkpoint (the next segment and the chain hash entering it;
 * a checksummed file, replaced atomically), and a scrub that finds one resumes there, if the
 * segments before it are still the files it read (size, inode, change time). The chain hash anchors
 * the resumed part: the next segment's frames must continue it. A scrub that reaches its end
 * removes the checkpoint, so the next start checks the whole history again.
 */
import { createHash } from 'node:crypto';
import { renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { checkFramesBeforeNewest, checkSegmentName, CorruptLogError, scanSegment, type ScanContext } from '../log/scan.js';
import { fsyncDirectory, listSegments, segmentFileName, type SegmentFile } from '../log/segments.js';
import { CHAIN_HASH_BYTES, FRAME_HEADER_BYTES, GENESIS_CHAIN_HASH } from '../log/frame.js';
import { readChecksummedFile, writeChecksummedFile } from './checked-file.js';
import type { LogScrubStatus } from './types.js';
import { newWorker } from '../stdx/node-flags.js';

/** Where the covered log ends: a snapshot's position, sequence and chain hash. */
export type ScrubEnd = Readonly<{ segmentFirstSequence: number; offset: number; sequence: number; chainHash: string }>;

/**
 * Counts of this scrub's reading; `resumedFromSequence` is the first sequence it read when it
 * resumed from a checkpoint (the frames before it were checked by an earlier scrub), else 1.
 */
export type ScrubProgress = Readonly<{ bytesChecked: number; bytesTotal: number; framesChecked: number; resumedFromSequence: number }>;

/**
 * Every frame before segment `segmentFirstSequence` was checked; `chainHash` (hex) enters it.
 * `files` (hex SHA-256 of each earlier segment's first sequence, size, inode and change time,
 * stat'ed right after it was read) ties it to the files that were read: a copied, restored or
 * rewritten segment has another change time (which no one can set back), and the log is then
 * read again from the first frame.
 */
export type ScrubCheckpoint = Readonly<{ segmentFirstSequence: number; chainHash: string; files: string }>;

const CHECKPOINT_VERSION = 1;
/** A checkpoint file's most bytes: a few fields of JSON. */
const CHECKPOINT_BYTES_MAX = 4096;

export type ScrubPacing = Readonly<{
  /** Most bytes read per second (reads are spread so the log's own fsyncs are not starved). */
  bytesPerSecond: number;
  nowMs: () => number;
  sleepMs: (ms: number) => void;
}>;

export const LOG_SCRUB_BYTES_PER_SECOND_DEFAULT = 64 * 1024 * 1024;

/** How often the read rate is checked, and the least progress reported. */
const PACE_EVERY_BYTES = 1 << 20;
const PROGRESS_EVERY_MS = 1000;
/**
 * Reading time a starved scrub may make up for: without a bound, a scrub held back for a minute
 * by a busy core would then read a minute's worth at full disk speed, beside the log's fsyncs.
 */
const CATCH_UP_MS_MAX = 1000;

/** A scrub's finding, with how far it got (the counts up to the frame before the problem). */
export class ScrubFailure extends Error {
  override readonly name = 'ScrubFailure';
  constructor(
    readonly corrupt: CorruptLogError,
    readonly progress: ScrubProgress,
  ) {
    super(corrupt.message);
  }
}

/**
 * Checks every frame in (0, end] of the log in `logDir`. Returns what it read; throws
 * ScrubFailure naming the file and offset of the first problem, with the counts so far.
 */
export function scrubLog(
  logDir: string,
  end: ScrubEnd,
  pacing: ScrubPacing,
  onProgress: (progress: ScrubProgress) => void,
  checkpointPath?: string,
): ScrubProgress {
  // Counted in place per frame; a ScrubProgress is made only to report.
  const counts = { bytesChecked: 0, bytesTotal: 0, framesChecked: 0, resumedFromSequence: 1 };
  const report = (): ScrubProgress => ({ ...counts });
  try {
    const covered = listSegments(logDir).filter((segment) => segment.firstSequence <= end.segmentFirstSequence);
    const last = covered.at(-1);
    if (last === undefined || last.firstSequence !== end.segmentFirstSequence) {
      throw new CorruptLogError(join(logDir, segmentFileName(end.segmentFirstSequence)), 0, end.sequence, 'the segment holding the snapshot position is missing');
    }
    const resume = resumePoint(covered, checkpointPath);
    const segments = resume === undefined ? covered : covered.slice(resume.at);
    /** Where checkpoints go, with the fingerprint of the whole segments read so far; undefined once one cannot be written. */
    let checkpoints = checkpointPath === undefined ? undefined : { path: checkpointPath, files: resume?.files ?? new FilesFingerprint() };
    const context: ScanContext =
      resume === undefined ? { chainHash: GENESIS_CHAIN_HASH, nextSequence: 1 } : { chainHash: Buffer.from(resume.checkpoint.chainHash, 'hex'), nextSequence: resume.checkpoint.segmentFirstSequence };
    counts.resumedFromSequence = context.nextSequence;
    counts.bytesTotal = segments.reduce((sum, segment) => sum + (segment === last ? end.offset : statSync(segment.path).size), 0);
    /** The clock the read rate is held against; moved forward when a starved scrub has too much to make up. */
    let paceFromMs = pacing.nowMs();
    let bytesSincePace = 0;
    let lastReportMs = paceFromMs;
    onProgress(report());
    for (const [index, segment] of segments.entries()) {
      checkSegmentName(segment, context.nextSequence);
      const endOffset = segment === last ? end.offset : Infinity;
      const scanned = scanSegment(segment.path, 0, false, context, (header) => {
        const bytes = FRAME_HEADER_BYTES + header.bodyBytes;
        counts.bytesChecked += bytes;
        counts.framesChecked++;
        bytesSincePace += bytes;
        if (bytesSincePace < PACE_EVERY_BYTES) return;
        bytesSincePace = 0;
        const aheadMs = (counts.bytesChecked / pacing.bytesPerSecond) * 1000 - (pacing.nowMs() - paceFromMs);
        if (aheadMs >= 1) pacing.sleepMs(aheadMs); // less is not worth a wait
        else if (aheadMs < -CATCH_UP_MS_MAX) paceFromMs -= aheadMs + CATCH_UP_MS_MAX;
        if (pacing.nowMs() - lastReportMs >= PROGRESS_EVERY_MS) {
          lastReportMs = pacing.nowMs();
          onProgress(report());
        }
      }, endOffset);
      checkFramesBeforeNewest(segment, scanned.endOffset, segment === last, context.nextSequence);
      if (segment === last && scanned.endOffset !== end.offset) {
        throw new CorruptLogError(segment.path, scanned.endOffset, context.nextSequence, `the frames end at byte offset ${scanned.endOffset}, not at the snapshot's position ${end.offset}`);
      }
      if (segment !== last && checkpoints !== undefined) {
        try {
          checkpoints.files.add(segment);
          saveCheckpoint(checkpoints.path, segments[index + 1]!, context, checkpoints.files);
        } catch (error) {
          // The checkpoint only saves work: without it the next scrub starts further back.
          process.emitWarning(`log scrub: no checkpoint written (${String(error)}); the scrub goes on without`);
          checkpoints = undefined;
        }
      }
    }
    if (context.nextSequence !== end.sequence + 1 || context.chainHash.toString('hex') !== end.chainHash) {
      throw new CorruptLogError(last.path, end.offset, context.nextSequence, `the log up to the snapshot's position does not end at the snapshot's sequence ${end.sequence} and chain hash`);
    }
    // A whole pass: the next scrub checks everything again.
    if (checkpointPath !== undefined) removeCheckpointAfterPass(checkpointPath);
  } catch (error) {
    if (error instanceof CorruptLogError) throw new ScrubFailure(error, report());
    throw error;
  }
  const done = report();
  onProgress(done);
  return done;
}

/**
 * The valid checkpoint at `path` made on these files: the index in `covered` of the segment it
 * names, and the fingerprint of the segments before it, to go on from.
 */
function resumePoint(covered: readonly SegmentFile[], path: string | undefined): { at: number; checkpoint: ScrubCheckpoint; files: FilesFingerprint } | undefined {
  const checkpoint = path === undefined ? undefined : readScrubCheckpoint(path);
  if (checkpoint === undefined) return undefined;
  const at = covered.findIndex((segment) => segment.firstSequence === checkpoint.segmentFirstSequence);
  if (at <= 0) return undefined;
  try {
    const files = new FilesFingerprint();
    for (const segment of covered.slice(0, at)) files.add(segment);
    return files.digest() === checkpoint.files ? { at, checkpoint, files } : undefined;
  } catch {
    return undefined; // a segment that cannot be stat'ed is read, and reported, by the full scrub
  }
}

/**
 * ScrubCheckpoint.files, built a segment at a time: each one is stat'ed right after it was read.
 * The device is left out: it can change on a remount or when a volume is attached elsewhere,
 * while inode and change time already tell a copy or a rewrite.
 */
class FilesFingerprint {
  private readonly hash = createHash('sha256');

  add(segment: SegmentFile): void {
    const { size, ino, ctimeNs } = statSync(segment.path, { bigint: true });
    this.hash.update(`${segment.firstSequence} ${size} ${ino} ${ctimeNs}\n`);
  }

  digest(): string {
    return this.hash.copy().digest('hex');
  }
}

function saveCheckpoint(path: string, next: SegmentFile, context: ScanContext, files: FilesFingerprint): void {
  // A next segment not named for where the log continues is this scrub's finding (checkSegmentName),
  // never a place to resume.
  if (next.firstSequence !== context.nextSequence) return;
  writeScrubCheckpoint(path, { segmentFirstSequence: next.firstSequence, chainHash: context.chainHash.toString('hex'), files: files.digest() });
}

/** A checkpoint left after a whole pass would let the next scrub skip what this one read: said loudly. */
function removeCheckpointAfterPass(path: string): void {
  try {
    rmSync(path, { force: true });
    rmSync(`${path}.tmp`, { force: true });
  } catch (error) {
    process.emitWarning(`log scrub: the checkpoint ${path} could not be removed (${String(error)}); the next start resumes from it instead of checking the whole log; remove it by hand`);
  }
}

/** Replaces the checkpoint at `path` atomically (temporary file, fsync, rename, fsync of the directory). */
export function writeScrubCheckpoint(path: string, checkpoint: ScrubCheckpoint): void {
  const temp = `${path}.tmp`;
  writeChecksummedFile(temp, (writer) => writer.write(Buffer.from(JSON.stringify({ version: CHECKPOINT_VERSION, ...checkpoint }))));
  renameSync(temp, path);
  fsyncDirectory(dirname(path));
}

/** The checkpoint at `path`, or undefined when there is none or it is not one this version wrote whole. */
export function readScrubCheckpoint(path: string): ScrubCheckpoint | undefined {
  try {
    // readChecksummedFile checks the CRC once everything is read.
    const text = readChecksummedFile(path, (reader) => {
      if (reader.remaining > CHECKPOINT_BYTES_MAX) throw new Error('checkpoint too large');
      const bytes = Buffer.alloc(reader.remaining);
      reader.read(bytes);
      return bytes.toString('utf8');
    });
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const { version, segmentFirstSequence, chainHash, files } = parsed as Record<string, unknown>;
    if (version !== CHECKPOINT_VERSION || !Number.isSafeInteger(segmentFirstSequence) || (segmentFirstSequence as number) < 1) return undefined;
    if (!isHexHash(chainHash) || !isHexHash(files)) return undefined;
    return { segmentFirstSequence: segmentFirstSequence as number, chainHash, files };
  } catch {
    return undefined; // none, torn, damaged or foreign: the scrub starts from the first frame
  }
}

function isHexHash(value: unknown): value is string {
  return typeof value === 'string' && value.length === 2 * CHAIN_HASH_BYTES && /^[0-9a-f]+$/.test(value);
}

export type ToScrubParent =
  | Readonly<{ kind: 'progress'; progress: ScrubProgress }>
  | Readonly<{ kind: 'passed'; progress: ScrubProgress }>
  | Readonly<{ kind: 'failed'; progress: ScrubProgress; failure: NonNullable<LogScrubStatus['failure']> }>;

export type ScrubJob = Readonly<{ logDir: string; end: ScrubEnd; bytesPerSecond: number; checkpointPath: string }>;

/**
 * What a LogScrub tells its owner. `onStart` comes with the worker's first report, the first that
 * knows where the scrub resumes; `onEnd` once, when it passed or failed (not when stopped).
 */
export type LogScrubEvents = Readonly<{
  onStart: (progress: ScrubProgress) => void;
  onEnd: (status: LogScrubStatus) => void;
}>;

/** A scrub on its worker thread. */
export class LogScrub {
  private current: LogScrubStatus;
  private readonly worker: Worker;
  /** Set by stop(): the worker's end after terminate() is ours, not a failure. */
  private stopping = false;
  private started = false;

  constructor(job: ScrubJob, events: LogScrubEvents) {
    const { onStart, onEnd } = events;
    this.current = { state: 'running', bytesChecked: 0, bytesTotal: 0, framesChecked: 0, resumedFromSequence: 1 };
    this.worker = newWorker(new URL('./scrub-worker.js', import.meta.url), { workerData: job });
    this.worker.unref(); // a scrub never keeps the process alive
    this.worker.on('message', (message: ToScrubParent) => {
      if (this.stopping) return;
      if (!this.started) {
        this.started = true;
        onStart(message.progress);
      }
      if (message.kind === 'progress') {
        this.current = { state: 'running', ...message.progress };
        return;
      }
      this.current = message.kind === 'passed' ? { state: 'passed', ...message.progress } : { state: 'failed', ...message.progress, failure: message.failure };
      onEnd(this.current);
    });
    this.worker.on('error', (error) => this.failUnexpectedly(`the scrub worker failed: ${error.message}`, onEnd));
    this.worker.on('exit', (code) => {
      if (this.current.state === 'running' && code !== 0) this.failUnexpectedly(`the scrub worker exited with code ${code}`, onEnd);
    });
  }

  status(): LogScrubStatus {
    return this.current;
  }

  /** Ends a running scrub without a verdict: its status becomes 'stopped', and `onEnd` is not called. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.current.state === 'running') this.current = { ...this.current, state: 'stopped' };
    await this.worker.terminate();
  }

  /** Not a finding about the log: reported as failed with no file, so it is not mistaken for a pass. */
  private failUnexpectedly(reason: string, onEnd: (status: LogScrubStatus) => void): void {
    if (this.stopping || this.current.state !== 'running') return;
    this.current = { ...this.current, state: 'failed', failure: { path: '', offset: 0, sequence: 0, reason, message: reason } };
    onEnd(this.current);
  }
}
