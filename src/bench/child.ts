/**
 * Stopping a server the bench started (walletd serve, a private redis-server): SIGTERM, wait
 * for the graceful exit, SIGKILL after a deadline, then remove its temporary data directory.
 * A server that failed to start is killed at once, and its directory removed once it has exited.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

export async function stopChildAndRemove(child: ChildProcess, exited: Promise<void>, stopTimeoutMs: number, dataDir: string): Promise<void> {
  if (running(child)) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
    await exited;
    clearTimeout(timer);
  }
  rmSync(dataDir, { recursive: true, force: true });
}

/** After a failed start: SIGKILL, wait for the exit (the child may still be writing there), remove. */
export async function killChildAndRemove(child: ChildProcess, exited: Promise<void>, dataDir: string): Promise<void> {
  if (running(child)) {
    child.kill('SIGKILL');
    await exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
}

/** A child that failed to spawn has an exit code (the negative errno) and never emits 'exit'. */
export function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}
