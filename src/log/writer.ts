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
import type { Worker } from 'node:worker_threads';
import { assert } from '../stdx/assert.js';
import { SEGMENT_BYTES_MAX_DEFAULT } from './segments.js';
import { newWorker } from '../stdx/node-flags.js';

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
  /**
   * The chain hash of the log's last frame (32 zero bytes for an empty log): frames are then
   * appended unsealed (frame.ts encodeUnsealedFrame) and the writer's thread seals each one,
   * chaining from this hash, before writing it. Without it frames are written as appended.
   */
  sealAfter?: Uint8Array;
}>;

/** What the writer's thread is started with. */
export type LogWorkerJob = Readonly<{
  logDir: string;
  fsync: boolean;
  segmentBytesMax: number;
  /** The segment to continue (cut to `bytes`), or none: a first segment named for `nextSequence` is created. */
  tail: Readonly<{ firstSequence: number; bytes: number }> | undefined;
  nextSequence: number;
  sealAfter: Uint8Array | undefined;
}>;

/** A frame's bytes: shared memory from the frame pool as it is, anything else as a copy the message carries. */
export type ToLogWorker =
  | Readonly<{ kind: 'frame'; memory: SharedArrayBuffer | ArrayBuffer; length: number; firstSequence: number }>
  | Readonly<{ kind: 'close' }>;

export type FromLogWorker =
  | Readonly<{ kind: 'ready' }>
  /** The oldest `frames` frames sent are durable, in one segment, at these offsets. */
  | Readonly<{ kind: 'committed'; frames: number; segmentFirstSequence: number; offsets: number[]; syncMs: number; chainHash: Uint8Array | undefined }>
  | Readonly<{ kind: 'failed'; message: string; code?: string }>;

/** A frame appended and not yet durable; `durable` is the promise append() returned, settled by `resolve`/`reject`. */
type InFlight = {
  frame: Buffer;
  firstSequence: number;
  eventCount: number;
  lastSequence: number;
  durable: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
};

function inFlightFrame(frame: Buffer, firstSequence: number, eventCount: number): InFlight {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const durable = new Promise<void>((settle, fail) => {
    resolve = settle;
    reject = fail;
  });
  return { frame, firstSequence, eventCount, lastSequence: firstSequence + eventCount - 1, durable, resolve, reject };
}

export class LogWriter {
  /**
   * Frames appended (and so sent to the writer's thread) and not yet durable, oldest first from
   * `inFlightHead`. A durableThrough wait shares its frame's promise: the writer keeps nothing per
   * wait and does no work per wait at a commit (this array is bounded by the frames in flight).
   * Each waiting caller's continuation stays attached to that promise until it settles, a request
   * that timed out included.
   */
  private inFlight: InFlight[] = [];
  private inFlightHead = 0;
  private failed: unknown = undefined;
  private closing = false;
  private readonly exited: Promise<void>;
  durableSequence: number;
  /** With sealAfter: the chain hash of the last durable frame (sealAfter until a frame is). */
  durableChainHash: Buffer | undefined;
  totalBytes = 0;
  /** Bytes of frames appended and not yet durable: the engine stops deciding above a bound. */
  pendingBytes = 0;

  private constructor(
    private readonly options: LogWriterOptions,
    private readonly worker: Worker,
    nextSequence: number,
  ) {
    this.durableSequence = nextSequence - 1;
    this.durableChainHash = options.sealAfter === undefined ? undefined : Buffer.from(options.sealAfter);
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
    const job: LogWorkerJob = { logDir: options.logDir, fsync: options.fsync, segmentBytesMax: options.segmentBytesMax ?? SEGMENT_BYTES_MAX_DEFAULT, tail, nextSequence, sealAfter: options.sealAfter };
    const worker = await startWorker(options.workerUrl ?? new URL('./writer-worker.js', import.meta.url), job);
    return new LogWriter(options, worker, nextSequence);
  }

  /** Queues a frame; resolves once it is durable. The frame's bytes must not change until then. */
  append(frame: Buffer, firstSequence: number, eventCount: number): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.closing) return Promise.reject(new Error('append after the log writer was closed'));
    const item = inFlightFrame(frame, firstSequence, eventCount);
    this.inFlight.push(item);
    this.pendingBytes += frame.length;
    if (this.inFlight.length - this.inFlightHead === 1) this.worker.ref();
    this.worker.postMessage(...frameMessage(frame, firstSequence));
    return item.durable;
  }

  /** Resolves when every frame appended so far is durable (rejects if the log failed first). */
  flushed(): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    return this.inFlightHead < this.inFlight.length ? this.inFlight[this.inFlight.length - 1]!.durable : Promise.resolve();
  }

  /**
   * Resolves once the log is durable up to `sequence`, which an appended frame holds: at the
   * group commit that covers it, not at the end of every frame appended so far (under load
   * that is a group later). Rejects if the log fails first.
   */
  durableThrough(sequence: number): Promise<void> {
    if (sequence <= this.durableSequence) return Promise.resolve();
    if (this.failed !== undefined) return Promise.reject(this.failed);
    return this.inFlight[this.coveringFrame(sequence)]!.durable;
  }

  /** Index in `inFlight` of the first frame whose last sequence is at least `sequence` (binary search). */
  private coveringFrame(sequence: number): number {
    let low = this.inFlightHead;
    let high = this.inFlight.length - 1;
    assert(high >= low && this.inFlight[high]!.lastSequence >= sequence, 'durableThrough of a position no frame appended holds');
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.inFlight[middle]!.lastSequence >= sequence) high = middle;
      else low = middle + 1;
    }
    return low;
  }

  /** Waits for what was appended, then ends the writer's thread (which closes the segment). */
  async close(): Promise<void> {
    await this.flushed().catch(() => undefined);
    if (!this.closing) {
      this.closing = true;
      this.worker.ref();
      this.worker.postMessage({ kind: 'close' } satisfies ToLogWorker);
    }
    await this.exited;
  }

  private onMessage(message: FromLogWorker): void {
    if (this.failed !== undefined) return;
    if (message.kind === 'committed') this.settleCommitted(message);
    else if (message.kind === 'failed') this.fail(workerError(message));
  }

  /** A commit whose frames cannot be settled (a callback threw) fails the log, as a failed write would, instead of escaping as an uncaught exception. */
  private settleCommitted(commit: Extract<FromLogWorker, { kind: 'committed' }>): void {
    const group = this.takeCommitted(commit.frames);
    try {
      this.committed(commit, group);
    } catch (error) {
      for (const item of group) item.reject(error); // those already resolved stay so
      this.fail(error);
    }
  }

  private committed(commit: Extract<FromLogWorker, { kind: 'committed' }>, group: InFlight[]): void {
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
    this.durableSequence = group[group.length - 1]!.lastSequence;
    if (commit.chainHash !== undefined) this.durableChainHash = Buffer.from(commit.chainHash);
    this.totalBytes += bytes;
    this.pendingBytes -= bytes;
    this.options.onGroupCommitted?.(group.length, events, bytes, commit.syncMs);
    for (const item of group) item.resolve();
    if (this.inFlightHead === this.inFlight.length && !this.closing) this.worker.unref();
  }

  /** The oldest `count` frames in flight, which a commit covers; the array is compacted once half of it is taken. */
  private takeCommitted(count: number): InFlight[] {
    assert(count > 0 && this.inFlightHead + count <= this.inFlight.length, 'a commit of frames never sent');
    const group = this.inFlight.slice(this.inFlightHead, this.inFlightHead + count);
    this.inFlightHead += count;
    if (this.inFlightHead === this.inFlight.length) {
      this.inFlight.length = 0;
      this.inFlightHead = 0;
    } else if (this.inFlightHead * 2 >= this.inFlight.length) {
      this.inFlight = this.inFlight.slice(this.inFlightHead);
      this.inFlightHead = 0;
    }
    return group;
  }

  private fail(error: unknown): void {
    if (this.failed !== undefined) return;
    this.failed = error;
    // Every frame in flight is rejected, and with it every wait on it.
    for (const item of this.inFlight.splice(this.inFlightHead)) item.reject(error);
    this.inFlight.length = 0;
    this.inFlightHead = 0;
    this.worker.unref();
    this.options.onFatal(error);
  }
}

/** The error a `failed` message stands for, with its errno code when it had one. */
function workerError(message: Extract<FromLogWorker, { kind: 'failed' }>): Error {
  return Object.assign(new Error(message.message), message.code === undefined ? {} : { code: message.code });
}

/** Starts the writer's thread; resolves once it has its segment open, rejects with its error if it could not. */
function startWorker(url: URL, job: LogWorkerJob): Promise<Worker> {
  const worker = newWorker(url, { workerData: job });
  return new Promise((resolve, reject) => {
    const settle = (error: Error | undefined): void => {
      worker.off('message', onMessage).off('error', settle).off('exit', onExit);
      if (error === undefined) resolve(worker);
      else reject(error);
    };
    const onMessage = (message: FromLogWorker): void => {
      if (message.kind === 'ready') settle(undefined);
      else if (message.kind === 'failed') settle(workerError(message));
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
