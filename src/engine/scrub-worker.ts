/**
 * Worker thread that scrubs the log a snapshot covers (scrub.ts), at nice 10 and a bounded read
 * rate, posting progress about once a second and then whether it passed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BACKGROUND_THREAD_NICE, lowerThisThreadPriority } from '../stdx/thread-priority.js';
import { ScrubFailure, scrubLog, type ScrubJob, type ToScrubParent } from './scrub.js';

const job = workerData as ScrubJob;
const post = (message: ToScrubParent): void => parentPort?.postMessage(message);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
lowerThisThreadPriority(BACKGROUND_THREAD_NICE);
try {
  const progress = scrubLog(
    job.logDir,
    job.end,
    { bytesPerSecond: job.bytesPerSecond, nowMs: () => performance.now(), sleepMs: (ms) => Atomics.wait(sleeper, 0, 0, ms) },
    (progress) => post({ kind: 'progress', progress }),
    job.checkpointPath,
  );
  post({ kind: 'passed', progress });
} catch (error) {
  if (!(error instanceof ScrubFailure)) throw error;
  const { corrupt, progress } = error;
  post({ kind: 'failed', progress, failure: { path: corrupt.path, offset: corrupt.offset, sequence: corrupt.sequence, reason: corrupt.reason, message: corrupt.message } });
}
