/**
 * Group commit. Frames appended while a commit is in flight queue up and go to disk together:
 * one writev and one fdatasync for the whole group. A frame's promise resolves only after the
 * fdatasync that covers it returns, so nothing is acknowledged before it is durable.
 *
 * The commits run on a thread of their own (writer-worker.ts), which owns the segment files:
 * this side hands it each frame as it is appended and settles frames as it reports commits.
 *
 * A failed write or sync is fatal for the process: memory is ahead of the disk and the log is
 * the source of truth, so the only safe continuation is a restart that recovers from the log.
 */
import { Worker } from 'node:worker_threads';
import { assert } from '../stdx/assert.js';
import { SEGMENT_BYTES_MAX_DEFAULT } from './segments.js';
import { workerExecArgv } from '../stdx/node-flags.js';

export type WrittenFrame = Readonly<{ segmentFirstSequence: number; offset: number; firstSequence: number; eventCount: number; bytes: number }>;

export type LogWriterOptions = Readonly<{
  logDir: string;
  fsync: boolean;
  segmentBytesMax?: number;
  /** Called for each frame once it is durable, before its promise settles; feeds the read index. */
  onFrameWritten?: (frame: WrittenFrame) => void;
  /** Called with each frame's buffer once it is durable: nothing reads it again. */
  onFrameBufferDone?: (frame: Buffer) => void;
  /** Called after each group commit with its size and the time the sync took (on the writer's thread). */
  onGroupCommitted?: (frames: number, events: number, bytes: number, syncMs: number) => void;
  onFatal: (error: unknown) => void;
  /** The writer thread's script; tests pass one that fails, to exercise the failure paths. */
  workerUrl?: URL;
}>;

/** What the writer's thread is started with. */
export type LogWorkerJob = Readonly<{
  logDir: string;
  fsync: boolean;
  segmentBytesMax: number;
  /** The segment to continue (cut to `bytes`), or none: a first segment named for `nextSequence` is created. */
  tail: Readonly<{ firstSequence: number; bytes: number }> | undefined;
  nextSequence: number;
}>;

/** A frame's bytes: shared memory from the frame pool as it is, anything else as a copy the message carries. */
export type ToLogWorker =
  | Readonly<{ kind: 'frame'; memory: SharedArrayBuffer | ArrayBuffer; length: number; firstSequence: number }>
  | Readonly<{ kind: 'close' }>;

export type FromLogWorker =
  | Readonly<{ kind: 'ready' }>
  /** The oldest `frames` frames sent are durable, in one segment, at these offsets. */
  | Readonly<{ kind: 'committed'; frames: number; segmentFirstSequence: number; offsets: number[]; syncMs: number }>
  | Readonly<{ kind: 'failed'; message: string; code?: string }>;

type Pending = { frame: Buffer; firstSequence: number; eventCount: number; resolve: () => void; reject: (error: unknown) => void };

export class LogWriter {
  /** Frames sent to the writer's thread and not yet committed, oldest first. */
  private sent: Pending[] = [];
  private sentHead = 0;
  private failed: unknown = undefined;
  private closing = false;
  private readonly exited: Promise<void>;
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
    private readonly worker: Worker,
    nextSequence: number,
  ) {
    this.durableSequence = nextSequence - 1;
    worker.unref(); // held only while frames are in flight
    worker.on('message', (message: FromLogWorker) => this.onMessage(message));
    worker.on('error', (error) => this.fail(error));
    this.exited = new Promise((resolve) =>
      worker.on('exit', (code) => {
        if (!this.closing) this.fail(new Error(`log writer thread exited with code ${code}`));
        resolve();
      }),
    );
  }

  /** Opens the tail segment for appending (cut to its whole frames), or creates the first one at `nextSequence`. */
  static async open(options: LogWriterOptions, tail: { firstSequence: number; bytes: number } | undefined, nextSequence: number): Promise<LogWriter> {
    const job: LogWorkerJob = { logDir: options.logDir, fsync: options.fsync, segmentBytesMax: options.segmentBytesMax ?? SEGMENT_BYTES_MAX_DEFAULT, tail, nextSequence };
    const worker = await startWorker(options.workerUrl ?? new URL('./writer-worker.js', import.meta.url), job);
    return new LogWriter(options, worker, nextSequence);
  }

  /** Queues a frame; resolves once it is durable. The frame's bytes must not change until then. */
  append(frame: Buffer, firstSequence: number, eventCount: number): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.closing) return Promise.reject(new Error('append after the log writer was closed'));
    const promise = new Promise<void>((resolve, reject) => {
      this.sent.push({ frame, firstSequence, eventCount, resolve, reject });
    });
    this.pendingBytes += frame.length;
    this.unsynced.push({ lastSequence: firstSequence + eventCount - 1, durable: promise });
    if (this.sent.length - this.sentHead === 1) this.worker.ref();
    this.worker.postMessage(...frameMessage(frame, firstSequence));
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

  /** Waits for what was appended, then ends the writer's thread (which closes the segment). */
  async close(): Promise<void> {
    await this.flushed().catch(() => undefined);
    if (this.closing) return;
    this.closing = true;
    this.worker.ref();
    this.worker.postMessage({ kind: 'close' } satisfies ToLogWorker);
    await this.exited;
  }

  private onMessage(message: FromLogWorker): void {
    if (this.failed !== undefined) return;
    if (message.kind === 'committed') this.settleCommitted(message);
    else if (message.kind === 'failed') this.fail(Object.assign(new Error(message.message), message.code === undefined ? {} : { code: message.code }));
  }

  /** A commit whose frames cannot be settled (a callback threw) fails the log, as a failed write would, instead of escaping as an uncaught exception. */
  private settleCommitted(commit: Extract<FromLogWorker, { kind: 'committed' }>): void {
    const group = this.takeSent(commit.frames);
    try {
      this.committed(commit, group);
    } catch (error) {
      for (const item of group) item.reject(error); // those already resolved stay so
      this.fail(error);
    }
  }

  private committed(commit: Extract<FromLogWorker, { kind: 'committed' }>, group: Pending[]): void {
    const { onFrameWritten, onFrameBufferDone } = this.options;
    let events = 0;
    let bytes = 0;
    for (let index = 0; index < group.length; index++) {
      const item = group[index]!;
      onFrameWritten?.({ segmentFirstSequence: commit.segmentFirstSequence, offset: commit.offsets[index]!, firstSequence: item.firstSequence, eventCount: item.eventCount, bytes: item.frame.length });
      onFrameBufferDone?.(item.frame);
      events += item.eventCount;
      bytes += item.frame.length;
    }
    const last = group[group.length - 1]!;
    this.durableSequence = last.firstSequence + last.eventCount - 1;
    this.totalBytes += bytes;
    this.pendingBytes -= bytes;
    this.options.onGroupCommitted?.(group.length, events, bytes, commit.syncMs);
    for (const item of group) item.resolve();
    this.dropSynced(group.length);
    if (this.sentHead === this.sent.length && !this.closing) this.worker.unref();
  }

  /** The oldest `count` frames sent, which a commit covers; the array is compacted once half of it is taken. */
  private takeSent(count: number): Pending[] {
    assert(count > 0 && this.sentHead + count <= this.sent.length, 'a commit of frames never sent');
    const group = this.sent.slice(this.sentHead, this.sentHead + count);
    this.sentHead += count;
    if (this.sentHead === this.sent.length) {
      this.sent.length = 0;
      this.sentHead = 0;
    } else if (this.sentHead * 2 >= this.sent.length) {
      this.sent = this.sent.slice(this.sentHead);
      this.sentHead = 0;
    }
    return group;
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

  private fail(error: unknown): void {
    if (this.failed !== undefined) return;
    this.failed = error;
    // Every unsynced frame's promise is rejected here, and with it every wait on it.
    for (const item of this.sent.splice(this.sentHead)) item.reject(error);
    this.sent.length = 0;
    this.sentHead = 0;
    this.worker.unref();
    this.options.onFatal(error);
  }
}

/** Starts the writer's thread; resolves once it has its segment open, rejects with its error if it could not. */
function startWorker(url: URL, job: LogWorkerJob): Promise<Worker> {
  const worker = new Worker(url, { workerData: job, execArgv: workerExecArgv() });
  return new Promise((resolve, reject) => {
    const settle = (error: Error | undefined): void => {
      worker.off('message', onMessage).off('error', settle).off('exit', onExit);
      if (error === undefined) resolve(worker);
      else reject(error);
    };
    const onMessage = (message: FromLogWorker): void => {
      if (message.kind === 'ready') settle(undefined);
      else if (message.kind === 'failed') settle(Object.assign(new Error(message.message), message.code === undefined ? {} : { code: message.code }));
    };
    const onExit = (code: number): void => settle(new Error(`log writer thread exited with code ${code} before it was ready`));
    worker.on('message', onMessage).on('error', settle).on('exit', onExit);
  });
}

/**
 * The message carrying a frame: pooled frames (shared memory at offset 0) go as a reference;
 * others as a copy moved with the message (a Buffer view would copy its whole backing store).
 */
function frameMessage(frame: Buffer, firstSequence: number): [ToLogWorker, ArrayBuffer[]] {
  if (frame.buffer instanceof SharedArrayBuffer && frame.byteOffset === 0) {
    return [{ kind: 'frame', memory: frame.buffer, length: frame.length, firstSequence }, []];
  }
  const copy = new ArrayBuffer(frame.length);
  new Uint8Array(copy).set(frame);
  return [{ kind: 'frame', memory: copy, length: frame.length, firstSequence }, [copy]];
}
