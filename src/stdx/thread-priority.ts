/**
 * Lowers the scheduling priority of the calling thread only. On Linux the nice value belongs to
 * each thread (task), not to the process, and setpriority(PRIO_PROCESS) given a thread's id
 * changes that thread alone; /proc/thread-self names the caller's id. Background work (the
 * snapshot worker) then yields the cores to the engine and the prepare worker when they are
 * busy, and still gets them when they are not.
 *
 * Returns false, changing nothing, where that is not possible (no /proc, another OS, a
 * sandbox that forbids it): the work then competes at normal priority, as before.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/**
 * Nice 10 (a tenth of the weight of a normal thread when the cores are contended): background
 * work (snapshots, the log scrub) then takes longer under full load instead of taking CPU from
 * deciding and preparing.
 */
export const BACKGROUND_THREAD_NICE = 10;

export function lowerThisThreadPriority(nice: number): boolean {
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isSafeInteger(threadId) || threadId <= 0) return false;
    setPriority(threadId, nice);
    return true;
  } catch {
    return false;
  }
}
