/**
 * Worker thread that writes a snapshot's new transaction chunk (merging older ones), digests
 * and writes the rest from a copy of the state's parts, so the engine only pauses for the copy
 * (a memcpy), not for hashing and writing hundreds of MB.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AccountParts } from '../core/digest.js';
import { writeSnapshotFile, type SnapshotPosition } from './snapshot.js';
import type { ChunkRef } from './txn-chunks.js';
import { lowerThisThreadPriority } from '../stdx/thread-priority.js';

type Job = Readonly<{ dir: string; parts: AccountParts; newEntries: readonly Uint32Array[]; position: SnapshotPosition; chunks: readonly ChunkRef[] }>;

/**
 * Nice 10 (a tenth of the weight of a normal thread when the cores are contended): a snapshot
 * then takes longer under full load instead of taking CPU from deciding and preparing.
 */
const SNAPSHOT_THREAD_NICE = 10;

const job = workerData as Job;
lowerThisThreadPriority(SNAPSHOT_THREAD_NICE);
try {
  parentPort?.postMessage({ ok: true, ...writeSnapshotFile(job.dir, job.parts, job.newEntries, job.position, job.chunks) });
} catch (error) {
  parentPort?.postMessage({ ok: false, message: (error as Error).message });
}
