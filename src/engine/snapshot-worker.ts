/**
 * Worker thread that writes a snapshot's new transaction chunk (merging older ones), digests
 * and writes the rest from a copy of the state's parts, so the engine only pauses for the copy
 * (a memcpy), not for hashing and writing hundreds of MB. The copy's buffers and the journal's
 * blocks go back to the engine afterwards, for reuse.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { captureBuffersOf, type AccountParts } from '../core/digest.js';
import { writeSnapshotFile, type SnapshotPosition } from './snapshot-write.js';
import type { ChunkRef } from './txn-chunks.js';
import { BACKGROUND_THREAD_NICE, lowerThisThreadPriority } from '../stdx/thread-priority.js';

type Job = Readonly<{ dir: string; parts: AccountParts; newEntries: readonly Uint32Array[]; position: SnapshotPosition; chunks: readonly ChunkRef[] }>;

const job = workerData as Job;
lowerThisThreadPriority(BACKGROUND_THREAD_NICE);
try {
  const written = writeSnapshotFile(job.dir, job.parts, job.newEntries, job.position, job.chunks);
  // The entries' buffers (journal blocks, when they came from the journal) and the capture's go
  // back to the engine for reuse: memory already mapped.
  const entryBuffers = job.newEntries.map((entries) => entries.buffer as ArrayBuffer);
  const capture = captureBuffersOf(job.parts);
  parentPort?.postMessage({ ok: true, ...written, entryBuffers, capture }, [...entryBuffers, capture.accountIdLengths, capture.ownerIdLengths, capture.accountRecords]);
} catch (error) {
  parentPort?.postMessage({ ok: false, message: (error as Error).message });
}
