/**
 * One process per data directory: two writers on one log would interleave frames and break
 * the hash chain. The lock is a LOCK file holding the owner's pid; a lock left by a process
 * that no longer exists (killed, crashed) is taken over.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
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

/** Takes the data directory's lock; returns the function that releases it. */
export function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, 'LOCK');
  try {
    const fd = openSync(path, 'wx', 0o600);
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const owner = Number(readFileSync(path, 'utf8').trim());
    if (Number.isInteger(owner) && owner > 0 && processAlive(owner)) {
      throw new DataDirLockedError(`data directory ${dataDir} is in use by process ${owner} (lock file ${path})`);
    }
    writeFileSync(path, `${process.pid}\n`, { mode: 0o600 });
  }
  return () => {
    try {
      if (Number(readFileSync(path, 'utf8').trim()) === process.pid) unlinkSync(path);
    } catch {
      // Already gone: nothing to release.
    }
  };
}
