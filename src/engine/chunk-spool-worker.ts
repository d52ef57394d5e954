/**
 * Worker thread of the chunk spool (chunk-spool.ts): appends the blocks of transaction entries
 * the engine's journal fills to the chunk of the interval in progress, folding them as they
 * come, and hands each block back for reuse; on a seal, ends the chunk (trailer, fsync, rename,
 * directory fsync) and says what it wrote. One chunk at a time; messages are handled in order,
 * so a seal follows every block sent before it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { fsyncDirectory } from '../log/segments.js';
import { BACKGROUND_THREAD_NICE, lowerThisThreadPriority } from '../stdx/thread-priority.js';
import type { FromSpoolWorker, SpoolJob, ToSpoolWorker } from './chunk-spool.js';
import { ChunkFileWriter } from './txn-chunks.js';

const port = parentPort;
if (port === null) throw new Error('chunk-spool-worker.js runs as a worker thread');
const job = workerData as SpoolJob;
lowerThisThreadPriority(BACKGROUND_THREAD_NICE);

/** The chunk being written, and the engine's number for it; undefined between a seal (or a failure) and the next open. */
let open: { file: number; writer: ChunkFileWriter } | undefined;

function send(message: FromSpoolWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

/** Ends the open chunk after a failure: its file removed, the engine told (it drops its journal; the next snapshot scans). */
function fail(file: number, error: unknown): void {
  open?.writer.abandon();
  open = undefined;
  send({ kind: 'failed', file, message: (error as Error).message });
}

function handle(message: ToSpoolWorker): void {
  const current = open?.file === message.file ? open : undefined;
  switch (message.kind) {
    case 'open':
      open?.writer.abandon();
      open = undefined; // stays so if the new file cannot be made
      open = { file: message.file, writer: new ChunkFileWriter(job.dir, message.afterSequence) };
      return;
    case 'entries':
      // Blocks of a chunk that failed or was dropped are only handed back.
      current?.writer.add(new Uint32Array(message.buffer, 0, message.words));
      return;
    case 'seal': {
      if (current === undefined) throw new Error('a seal for a chunk that is not open');
      if (current.writer.count !== message.count) throw new Error(`the spooled chunk holds ${current.writer.count} entries, the journal ${message.count}`);
      const chunk = current.writer.finish(message.toSequence);
      open = undefined;
      fsyncDirectory(job.dir);
      send({ kind: 'sealed', file: message.file, chunk });
      return;
    }
    case 'abandon':
      current?.writer.abandon();
      if (current !== undefined) open = undefined;
      return;
    case 'close':
      open?.writer.abandon();
      open = undefined;
      port!.close(); // nothing else keeps the thread alive: it exits
      return;
  }
}

port.on('message', (message: ToSpoolWorker) => {
  try {
    handle(message);
  } catch (error) {
    fail(message.file, error);
  } finally {
    // Written or not, a block's memory goes back to the engine's pool.
    if (message.kind === 'entries') send({ kind: 'buffer', buffer: message.buffer }, [message.buffer]);
  }
});
