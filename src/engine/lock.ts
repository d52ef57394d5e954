/**
 * One process per data directory: two writers on one log would interleave frames and break
 * the hash chain. The lock is a LOCK file naming its owner, created with O_EXCL; a lock left by
 * a process that no longer exists (killed, crashed) is taken over.
 *
 * The owner is named by pid and, where the host has /proc (Linux), by the boot it ran in and
 * its start time in that boot. A pid alone is not enough: after a crash and a reboot, a low
 * pid is soon given to some other process, and a lock naming it would refuse every start
 * until an operator removed it. A lock from another boot, or whose pid now belongs to a
 * process started at another time, is stale. Files holding only a pid (older walletd) are
 * judged by the pid alone.
 *
 * Taking over must be atomic too: two processes that both find the same stale LOCK would
 * otherwise both replace it and both run. A takeover therefore first creates LOCK.takeover
 * (O_EXCL, naming the taker), checks under it that LOCK still names the stale owner, removes
 * LOCK and creates its own with O_EXCL again. A LOCK.takeover whose process is gone (it
 * crashed mid-takeover) is removed by the next starter.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
}

/** What a lock file says of its owner: `pid`, or `pid boot-id start-ticks` where /proc exists. */
type Owner = Readonly<{ text: string; pid: number; bootId: string | undefined; startTicks: string | undefined }>;

/** The running kernel's boot id; undefined without /proc. */
function currentBootId(): string | undefined {
  return readProcFile('/proc/sys/kernel/random/boot_id')?.trim();
}

/**
 * A process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat); undefined
 * when it cannot be read (no /proc, the process is gone, or its entry is hidden).
 */
export function processStartTicks(pid: number | 'self'): string | undefined {
  const stat = readProcFile(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // Field 2, the command name, is in parentheses and may itself hold spaces or parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = fields[22 - 3];
  return ticks !== undefined && /^\d+$/.test(ticks) ? ticks : undefined;
}

function readProcFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The line this process writes into the lock files it creates. */
function ownLockText(): string {
  const bootId = currentBootId();
  const startTicks = processStartTicks('self');
  return bootId === undefined || startTicks === undefined ? `${process.pid}\n` : `${process.pid} ${bootId} ${startTicks}\n`;
}

function parseOwner(text: string): Owner {
  const [pidText = '', bootId, startTicks] = text.trim().split(' ');
  const pid = /^\d+$/.test(pidText) ? Number(pidText) : Number.NaN;
  return { text, pid, bootId, startTicks };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the process the lock names still runs. With a boot id and start time, a pid that is
 * alive must also have started at that time in this boot; when the live pid's start time cannot
 * be read, it is taken to be the owner (refusing a start is safer than two writers).
 */
function isLive(owner: Owner): boolean {
  if (!Number.isInteger(owner.pid) || owner.pid <= 0 || !pidAlive(owner.pid)) return false;
  if (owner.bootId === undefined || owner.startTicks === undefined) return true;
  const bootId = currentBootId();
  if (bootId !== undefined && bootId !== owner.bootId) return false;
  const startTicks = processStartTicks(owner.pid);
  return startTicks === undefined || startTicks === owner.startTicks;
}

/** Creates `path` naming this process; false if it already exists. */
function createExclusive(path: string, text: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** The owner a lock file names; undefined when the file is gone. A damaged file gives a NaN pid. */
function ownerOf(path: string): Owner | undefined {
  try {
    return parseOwner(readFileSync(path, 'utf8'));
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
function settledOwnerOf(path: string): Owner | undefined {
  const owner = ownerOf(path);
  if (owner === undefined || owner.pid > 0) return owner;
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, WRITE_GRACE_MS);
  return ownerOf(path);
}

/** Removes the lock file if it still holds exactly `text` (what was read, or what we wrote). */
function removeIfOwnedBy(path: string, text: string): void {
  if (ownerOf(path)?.text !== text) return;
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
  const ours = ownLockText();
  const release = (): void => removeIfOwnedBy(path, ours);
  // A few rounds: each either takes the lock, finds it held, or clears one stale holder.
  for (let round = 0; round < 4; round++) {
    if (createExclusive(path, ours)) return release;
    const owner = settledOwnerOf(path);
    if (owner === undefined) continue; // released meanwhile
    if (isLive(owner)) throw new DataDirLockedError(`data directory ${dataDir} is in use by process ${owner.pid} (lock file ${path})`);
    if (!createExclusive(takeoverPath, ours)) {
      const taker = settledOwnerOf(takeoverPath);
      if (taker !== undefined && isLive(taker)) {
        throw new DataDirLockedError(`data directory ${dataDir} is being taken over by process ${taker.pid} (lock file ${takeoverPath})`);
      }
      if (taker !== undefined) removeIfOwnedBy(takeoverPath, taker.text); // gone mid-takeover, or damaged
      continue;
    }
    try {
      // Under the takeover lock: nobody else replaces LOCK, so the stale owner is still its owner
      // unless it was released and re-taken by a fresh start, which then holds it.
      removeIfOwnedBy(path, owner.text);
      if (createExclusive(path, ours)) return release;
    } finally {
      removeIfOwnedBy(takeoverPath, ours);
    }
  }
  const owner = ownerOf(path);
  throw new DataDirLockedError(`data directory ${dataDir} is locked (lock file ${path}${owner === undefined ? '' : `, process ${owner.pid}`}); could not take it over`);
}
