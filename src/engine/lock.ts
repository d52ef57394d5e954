/**
 * One process per data directory: two writers on one log would interleave frames and break
 * the hash chain. The lock is a LOCK file holding the owner's pid, created with O_EXCL; a lock
 * left by a process that no longer exists (killed, crashed) is taken over.
 *
 * Taking over must be atomic too: two processes that both find the same stale LOCK would
 * otherwise both replace it and both run. A takeover therefore first creates LOCK.takeover
 * (O_EXCL, holding the taker's pid), checks under it that LOCK still names the dead process,
 * removes LOCK and creates its own with O_EXCL again. A LOCK.takeover whose process is dead
 * (it crashed mid-takeover) is removed by the next starter.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Creates `path` holding our pid; false if it already exists. */
function createExclusive(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** The pid in a lock file; undefined when it is gone; NaN when it holds no pid (being written, or damaged). */
function ownerOf(path: string): number | undefined {
  try {
    return Number(readFileSync(path, 'utf8').trim());
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

const WRITE_GRACE_MS = 50;

/**
 * ownerOf, but a file without a pid yet (its creator is between open and write) is read again
 * after a short wait, so a lock being written is not mistaken for a damaged one.
 */
function settledOwnerOf(path: string): number | undefined {
  const owner = ownerOf(path);
  if (owner === undefined || (Number.isInteger(owner) && owner > 0)) return owner;
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, WRITE_GRACE_MS);
  return ownerOf(path);
}

function isLive(owner: number): boolean {
  return Number.isInteger(owner) && owner > 0 && processAlive(owner);
}

/** Object.is: a damaged file's NaN owner matches itself. */
function removeIfOwnedBy(path: string, owner: number): void {
  const current = ownerOf(path);
  if (current === undefined || !Object.is(current, owner)) return;
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** Takes the data directory's lock; returns the function that releases it. */
export function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, 'LOCK');
  const takeoverPath = join(dataDir, 'LOCK.takeover');
  // A few rounds: each either takes the lock, finds it held, or clears one dead holder.
  for (let round = 0; round < 4; round++) {
    if (createExclusive(path)) return () => removeIfOwnedBy(path, process.pid);
    const owner = settledOwnerOf(path);
    if (owner === undefined) continue; // released meanwhile
    if (isLive(owner)) throw new DataDirLockedError(`data directory ${dataDir} is in use by process ${owner} (lock file ${path})`);
    if (!createExclusive(takeoverPath)) {
      const taker = settledOwnerOf(takeoverPath);
      if (taker !== undefined && isLive(taker)) {
        throw new DataDirLockedError(`data directory ${dataDir} is being taken over by process ${taker} (lock file ${takeoverPath})`);
      }
      if (taker !== undefined) removeIfOwnedBy(takeoverPath, taker); // died mid-takeover, or damaged
      continue;
    }
    try {
      // Under the takeover lock: nobody else replaces LOCK, so the dead owner is still its owner
      // unless it was released and re-taken by a fresh start, which then holds it.
      removeIfOwnedBy(path, owner);
      if (createExclusive(path)) return () => removeIfOwnedBy(path, process.pid);
    } finally {
      removeIfOwnedBy(takeoverPath, process.pid);
    }
  }
  const owner = ownerOf(path);
  throw new DataDirLockedError(`data directory ${dataDir} is locked (lock file ${path}${owner === undefined ? '' : `, process ${owner}`}); could not take it over`);
}
