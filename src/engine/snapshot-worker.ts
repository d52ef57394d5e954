/**
 * Worker thread that writes a snapshot file while the engine goes on: the ids come shared at
 * the start, the account records a piece at a time (each piece's buffer goes back to the engine
 * for the next), then the new transaction entries; it writes their chunk, digests, and ends the
 * file with its meta. The engine never pauses to copy the state, and holds no full copy of it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AccountIdParts } from '../core/digest.js';
import { SnapshotFileWriter, type NewEntries, type SnapshotPosition, type WrittenSnapshot } from './snapshot-write.js';
import type { ChunkRef } from './txn-chunks.js';
import { BACKGROUND_THREAD_NICE, lowerThisThreadPriority } from '../stdx/thread-priority.js';

export type SnapshotJob = Readonly<{ dir: string; parts: AccountIdParts; position: SnapshotPosition }>;
/**
 * Engine to worker: a piece of records (in the first `bytes` of `buffer`), the end with the new
 * entries, or an abort (the engine failed): remove the file and exit.
 */
export type ToSnapshotWorker = Readonly<{ kind: 'records'; buffer: ArrayBuffer; bytes: number } | { kind: 'end'; newEntries: NewEntries; chunks: readonly ChunkRef[] } | { kind: 'abort' }>;
/** Worker to engine: a piece's buffer handed back, then the written file or the failure; the worker exits after either. */
export type FromSnapshotWorker = Readonly<{ kind: 'buffer'; buffer: ArrayBuffer } | { kind: 'written'; written: WrittenSnapshot } | { kind: 'failed'; message: string }>;

const port = parentPort!;
const job = workerData as SnapshotJob;
lowerThisThreadPriority(BACKGROUND_THREAD_NICE);

function send(message: FromSnapshotWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

let file: SnapshotFileWriter | undefined;
try {
  file = new SnapshotFileWriter(job.dir, job.parts, job.position);
} catch (error) {
  send({ kind: 'failed', message: (error as Error).message });
}

port.on('message', (message: ToSnapshotWorker) => {
  if (message.kind === 'abort') {
    file?.abandon();
    file = undefined;
    port.close(); // nothing keeps the thread alive then: it exits
    return;
  }
  if (file === undefined) return; // failed already, and said so
  try {
    if (message.kind === 'records') {
      file.addRecords(new Uint8Array(message.buffer, 0, message.bytes));
      send({ kind: 'buffer', buffer: message.buffer }, [message.buffer]);
      return;
    }
    const written = file.finish(message.newEntries, message.chunks);
    file = undefined;
    send({ kind: 'written', written });
    port.close();
  } catch (error) {
    file?.abandon();
    file = undefined;
    send({ kind: 'failed', message: (error as Error).message });
    port.close();
  }
});
if (file === undefined) port.close();
