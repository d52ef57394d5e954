/**
 * Group commit. Frames appended while a write is in flight queue up and go to disk together:
 * one writev and one fdatasync for the whole group. A frame's promise resolves only after the
 * fdatasync that covers it returns, so nothing is acknowledged before it is durable.
 *
 * A failed write or sync is fatal for the process: memory is ahead of the disk and the log is
 * the source of truth, so the only safe continuation is a restart that recovers from the log.
 */
import { fdatasync, writev, writevSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { assert } from '../stdx/assert.js';
import { fsyncDirectory, segmentFileName, SEGMENT_BYTES_MAX_DEFAULT } from './segments.js';

/** The most frames written by one writev (the kernel's IOV_MAX is 1024). */
const GROUP_FRAMES_MAX = 1024;
/**
 * Groups up to this size are written by a blocking writev on the engine's thread: copying a few
 * KiB into the page cache costs less than a thread-pool round trip (about 13 µs of this
 * thread's CPU per call, measured), and many small groups are what single requests make.
 * Larger groups go through the thread pool so the copy runs beside the engine.
 */
const INLINE_WRITE_BYTES_MAX = 64 * 1024;

export type WrittenFrame = Readonly<{ segmentFirstSequence: number; offset: number; firstSequence: number; eventCount: number; bytes: number }>;

export type LogWriterOptions = Readonly<{
  logDir: string;
  fsync: boolean;
  segmentBytesMax?: number;
  /** Called for each frame once it is written (before its sync); feeds the read index. */
  onFrameWritten?: (frame: WrittenFrame) => void;
  /** Called with each frame's buffer once it is written (before the sync): nothing reads it again. */
  onFrameBufferDone?: (frame: Buffer) => void;
  /** Called after each group commit with its size and the time the sync took. */
  onGroupCommitted?: (frames: number, events: number, bytes: number, syncMs: number) => void;
  onFatal: (error: unknown) => void;
}>;

type Pending = { frame: Buffer; firstSequence: number; eventCount: number; resolve: () => void; reject: (error: unknown) => void };

export class LogWriter {
  private pending: Pending[] = [];
  private flushing = false;
  private failed: unknown = undefined;
  /**
   * Frames appended and not yet durable, in order from `unsyncedHead`: their last sequence and
   * the promise append() returned. A durableThrough wait shares its frame's promise: the writer
   * keeps nothing per wait and does no work per wait at a commit (this array is bounded by the
   * frames in flight). Each waiting caller's continuation stays attached to that promise until it
   * settles, a request that timed out included.
   */
  private unsynced: Array<{ lastSequence: number; durable: Promise<void> }> = [];
  private unsyncedHead = 0;
  durableSequence: number;
  totalBytes = 0;
  /** Bytes of frames appended and not yet durable: the engine stops deciding above a bound. */
  pendingBytes = 0;

  private constructor(
    private readonly options: LogWriterOptions,
    private handle: FileHandle,
    private segmentFirstSequence: number,
    private segmentBytes: number,
    nextSequence: number,
  ) {
    this.durableSequence = nextSequence - 1;
  }

  /** Opens the tail segment for appending (or creates the first one at `nextSequence`). */
  static async open(options: LogWriterOptions, tail: { firstSequence: number; bytes: number } | undefined, nextSequence: number): Promise<LogWriter> {
    if (tail === undefined) {
      const handle = await createSegment(options.logDir, nextSequence);
      return new LogWriter(options, handle, nextSequence, 0, nextSequence);
    }
    const handle = await open(join(options.logDir, segmentFileName(tail.firstSequence)), 'r+');
    await handle.truncate(tail.bytes);
    await handle.sync();
    return new LogWriter(options, handle, tail.firstSequence, tail.bytes, nextSequence);
  }

  /** Queues a frame; resolves once it is durable. */
  append(frame: Buffer, firstSequence: number, eventCount: number): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const promise = new Promise<void>((resolve, reject) => {
      this.pending.push({ frame, firstSequence, eventCount, resolve, reject });
    });
    this.pendingBytes += frame.length;
    this.unsynced.push({ lastSequence: firstSequence + eventCount - 1, durable: promise });
    if (!this.flushing) void this.flushLoop();
    return promise;
  }

  /** Resolves when every frame appended so far is durable (rejects if the log failed first). */
  flushed(): Promise<void> {
    return this.unsyncedHead < this.unsynced.length ? this.unsynced[this.unsynced.length - 1]!.durable : Promise.resolve();
  }

  /**
   * Resolves once the log is durable up to `sequence`, which an appended frame holds: at the
   * group commit that covers it, not at the end of every frame appended so far (under load
   * that is a group later). Rejects if the log fails first.
   */
  durableThrough(sequence: number): Promise<void> {
    if (sequence <= this.durableSequence) return Promise.resolve();
    if (this.failed !== undefined) return Promise.reject(this.failed);
    return this.unsynced[this.coveringFrame(sequence)]!.durable;
  }

  /** Index in `unsynced` of the first frame whose last sequence is at least `sequence` (binary search). */
  private coveringFrame(sequence: number): number {
    let low = this.unsyncedHead;
    let high = this.unsynced.length - 1;
    assert(high >= low && this.unsynced[high]!.lastSequence >= sequence, 'durableThrough of a position no frame appended holds');
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.unsynced[middle]!.lastSequence >= sequence) high = middle;
      else low = middle + 1;
    }
    return low;
  }

  async close(): Promise<void> {
    await this.flushed().catch(() => undefined);
    await this.handle.close();
  }

  private async flushLoop(): Promise<void> {
    this.flushing = true;
    let group: Pending[] = [];
    try {
      while (this.pending.length > 0) {
        group = this.pending.splice(0, GROUP_FRAMES_MAX);
        await this.writeGroup(group);
      }
    } catch (error) {
      for (const item of group) item.reject(error);
      this.fail(error);
    } finally {
      this.flushing = false;
    }
  }

  private async writeGroup(group: Pending[]): Promise<void> {
    const segmentBytesMax = this.options.segmentBytesMax ?? SEGMENT_BYTES_MAX_DEFAULT;
    const first = group[0]!;
    if (this.segmentBytes > 0 && this.segmentBytes + groupBytes(group) > segmentBytesMax) await this.rollSegment(first.firstSequence);
    const startOffset = this.segmentBytes;
    let offset = startOffset;
    let events = 0;
    const frames: Buffer[] = [];
    for (const item of group) {
      this.options.onFrameWritten?.({ segmentFirstSequence: this.segmentFirstSequence, offset, firstSequence: item.firstSequence, eventCount: item.eventCount, bytes: item.frame.length });
      offset += item.frame.length;
      events += item.eventCount;
      frames.push(item.frame);
    }
    await writeAll(this.handle.fd, frames, startOffset, offset - startOffset <= INLINE_WRITE_BYTES_MAX);
    const done = this.options.onFrameBufferDone;
    if (done !== undefined) for (const frame of frames) done(frame);
    const syncStarted = performance.now();
    if (this.options.fsync) await datasyncFd(this.handle.fd);
    const syncMs = performance.now() - syncStarted;
    this.segmentBytes = offset;
    this.totalBytes += offset - startOffset;
    const last = group[group.length - 1]!;
    this.durableSequence = last.firstSequence + last.eventCount - 1;
    this.pendingBytes -= offset - startOffset;
    this.options.onGroupCommitted?.(group.length, events, offset - startOffset, syncMs);
    for (const item of group) item.resolve();
    this.dropSynced(group.length);
  }

  /** The oldest `frames` of `unsynced` are durable; the array is compacted once half of it is. */
  private dropSynced(frames: number): void {
    this.unsyncedHead += frames;
    if (this.unsyncedHead === this.unsynced.length) {
      this.unsynced.length = 0;
      this.unsyncedHead = 0;
    } else if (this.unsyncedHead * 2 >= this.unsynced.length) {
      this.unsynced = this.unsynced.slice(this.unsyncedHead);
      this.unsyncedHead = 0;
    }
  }

  private async rollSegment(firstSequence: number): Promise<void> {
    if (this.options.fsync) await this.handle.sync();
    await this.handle.close();
    this.handle = await createSegment(this.options.logDir, firstSequence);
    this.segmentFirstSequence = firstSequence;
    this.segmentBytes = 0;
  }

  private fail(error: unknown): void {
    this.failed = error;
    // Every unsynced frame's promise is rejected here or with its group, and with it every wait on it.
    for (const item of this.pending.splice(0)) item.reject(error);
    this.options.onFatal(error);
  }
}

function groupBytes(group: Pending[]): number {
  let bytes = 0;
  for (const item of group) bytes += item.frame.length;
  return bytes;
}

async function createSegment(logDir: string, firstSequence: number): Promise<FileHandle> {
  const handle = await open(join(logDir, segmentFileName(firstSequence)), 'wx');
  fsyncDirectory(logDir);
  return handle;
}

/**
 * writev until every byte is written (a short write is legal): `inline`, blocking on this
 * thread (see INLINE_WRITE_BYTES_MAX), else through the thread pool. The two calls of every
 * group commit go through the callback API on the raw descriptor: FileHandle's promise
 * wrappers cost about 4 µs more CPU per call (measured), paid on every commit.
 */
async function writeAll(fd: number, buffers: Buffer[], position: number, inline: boolean): Promise<void> {
  let remaining = buffers;
  let at = position;
  while (remaining.length > 0) {
    const bytesWritten = inline ? writevSync(fd, remaining, at) : await writevAt(fd, remaining, at);
    assert(bytesWritten > 0, 'writev wrote nothing');
    at += bytesWritten;
    remaining = dropBytes(remaining, bytesWritten);
  }
}

function dropBytes(buffers: Buffer[], count: number): Buffer[] {
  let left = count;
  const rest: Buffer[] = [];
  for (const buffer of buffers) {
    if (left >= buffer.length) {
      left -= buffer.length;
      continue;
    }
    rest.push(left > 0 ? buffer.subarray(left) : buffer);
    left = 0;
  }
  return rest;
}

function writevAt(fd: number, buffers: Buffer[], position: number): Promise<number> {
  return new Promise((resolve, reject) => writev(fd, buffers, position, (error, bytesWritten) => (error === null ? resolve(bytesWritten) : reject(error))));
}

function datasyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (error) => (error === null ? resolve() : reject(error))));
}
