/**
 * The log writer's thread (writer.ts): owns the segment files and runs the group commit. Frames
 * arrive in order as messages; whatever has arrived when a commit starts goes to disk together,
 * one writev and one fdatasync, and the engine is told what was committed and where. Commits
 * follow each other at the disk's pace, whatever the engine's thread is doing meanwhile: on that
 * thread, each of the two calls of a commit waited for the event loop to come round before the
 * next could start.
 *
 * Any failure is final: the engine is told once, and nothing more is written.
 */
import { closeSync, fdatasyncSync, fsyncSync, ftruncateSync, openSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { sealFrame } from './frame.js';
import { fsyncDirectory, segmentFileName } from './segments.js';
import type { FromLogWorker, LogWorkerJob, ToLogWorker } from './writer.js';

/** The most frames written by one writev (the kernel's IOV_MAX is 1024). */
const GROUP_FRAMES_MAX = 1024;

const port = parentPort;
if (port === null) throw new Error('writer-worker.js runs as a worker thread');
const job = workerData as LogWorkerJob;

type Frame = { bytes: Buffer; firstSequence: number };

const queued: Frame[] = [];
let segment: { fd: number; firstSequence: number; bytes: number } | undefined;
let committing = false;
let closing = false;
let failed = false;
/** With job.sealAfter: the chain hash of the last frame sealed, the next one's previous. */
let chainHash: Uint8Array | undefined = job.sealAfter;

function send(message: FromLogWorker): void {
  port!.postMessage(message);
}

function start(): void {
  try {
    segment = job.tail === undefined ? createSegment(job.nextSequence) : reopenTail(job.tail);
  } catch (error) {
    reportFailure(error);
    port!.close();
    return;
  }
  send({ kind: 'ready' });
  port!.on('message', (message: ToLogWorker) => {
    accept(message);
    if (!committing) commitAll();
  });
}

/** The tail segment, cut where recovery found the last whole frame (a torn tail goes). */
function reopenTail(tail: { firstSequence: number; bytes: number }): { fd: number; firstSequence: number; bytes: number } {
  const fd = openSync(join(job.logDir, segmentFileName(tail.firstSequence)), 'r+');
  ftruncateSync(fd, tail.bytes);
  fsyncSync(fd);
  return { fd, firstSequence: tail.firstSequence, bytes: tail.bytes };
}

function createSegment(firstSequence: number): { fd: number; firstSequence: number; bytes: number } {
  const fd = openSync(join(job.logDir, segmentFileName(firstSequence)), 'wx');
  fsyncDirectory(job.logDir);
  return { fd, firstSequence, bytes: 0 };
}

function accept(message: ToLogWorker): void {
  if (message.kind === 'close') closing = true;
  else if (!failed) queued.push({ bytes: Buffer.from(message.memory, 0, message.length), firstSequence: message.firstSequence });
}

/** Commits until nothing has arrived meanwhile; frames sent during a commit join the next. */
function commitAll(): void {
  committing = true;
  try {
    for (;;) {
      for (let received; (received = receiveMessageOnPort(port!)) !== undefined; ) accept(received.message as ToLogWorker);
      if (queued.length === 0 || failed) break;
      commit(queued.splice(0, GROUP_FRAMES_MAX));
    }
  } catch (error) {
    failed = true;
    queued.length = 0;
    reportFailure(error);
  } finally {
    committing = false;
  }
  if (closing) finish();
}

function commit(group: Frame[]): void {
  const groupBytes = group.reduce((sum, frame) => sum + frame.bytes.length, 0);
  if (segment!.bytes > 0 && segment!.bytes + groupBytes > job.segmentBytesMax) roll(group[0]!.firstSequence);
  const current = segment!;
  const offsets = new Array<number>(group.length);
  let offset = current.bytes;
  for (let index = 0; index < group.length; index++) {
    offsets[index] = offset;
    offset += group[index]!.bytes.length;
  }
  if (chainHash !== undefined) for (const frame of group) chainHash = sealFrame(frame.bytes, chainHash);
  writeAll(current.fd, group.map((frame) => frame.bytes), current.bytes);
  const syncStarted = performance.now();
  if (job.fsync) fdatasyncSync(current.fd);
  const syncMs = performance.now() - syncStarted;
  current.bytes = offset;
  send({ kind: 'committed', frames: group.length, segmentFirstSequence: current.firstSequence, offsets, syncMs, chainHash });
}

/** A group never spans two segments: the full one is synced and closed, the next created. */
function roll(firstSequence: number): void {
  const full = segment!;
  if (job.fsync) fsyncSync(full.fd);
  closeSync(full.fd);
  segment = undefined; // so that finish() does not close that descriptor again if the next cannot be created
  segment = createSegment(firstSequence);
}

/** writev until every byte is written (a short write is legal). */
function writeAll(fd: number, buffers: Buffer[], position: number): void {
  let remaining = buffers;
  let at = position;
  while (remaining.length > 0) {
    const written = writevSync(fd, remaining, at);
    if (written <= 0) throw new Error('writev wrote nothing');
    at += written;
    remaining = dropBytes(remaining, written);
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

function reportFailure(error: unknown): void {
  const { message, code } = error as NodeJS.ErrnoException;
  send({ kind: 'failed', message: String(message ?? error), ...(code === undefined ? {} : { code }) });
}

/** After the engine's close: the last commit is done (the engine waited for it); the port closes and the thread ends. */
function finish(): void {
  if (segment !== undefined) closeSync(segment.fd);
  segment = undefined;
  port!.close();
}

start();
