/**
 * Worker thread that writes a snapshot's new transaction chunk (merging older ones), digests
 * and writes the rest from a copy of the state's parts, so the engine only pauses for the copy
 * (a memcpy), not for hashing and writing hundreds of MB. The copy's buffers go back to the
 * engine afterwards, for reuse.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { captureBuffersOf, type AccountParts } from '../core/digest.js';
import { writeSnapshotFile, type NewEntries, type SnapshotPosition } from './snapshot-write.js';
import type { ChunkRef } from './txn-chunks.js';
import { BACKGROUND_THREAD_NICE, lowerThisThreadPriority } from '../stdx/thread-priority.js';

type Job = Readonly<{ dir: string; parts: AccountParts; newEntries: NewEntries; position: SnapshotPosition; chunks: readonly ChunkRef[] }>;

const job = workerData as Job;
lowerThisThreadPriority(BACKGROUND_THREAD_NICE);
try {
  const written = writeSnapshotFile(job.dir, job.parts, job.newEntries, job.position, job.chunks);
  // The capture's buffers go back to the engine for reuse: memory already mapped.
  const capture = captureBuffersOf(job.parts);
  parentPort?.postMessage({ ok: true, ...written, capture }, [capture.accountIdLengths, capture.ownerIdLengths, capture.accountRecords]);
} catch (error) {
  parentPort?.postMessage({ ok: false, message: (error as Error).message });
}
