/**
 * Stopping a server the bench started (walletd serve, a private redis-server): SIGTERM, wait
 * for the graceful exit, SIGKILL after a deadline, then remove its temporary data directory.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

export async function stopChildAndRemove(child: ChildProcess, exited: Promise<void>, stopTimeoutMs: number, dataDir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
    await exited;
    clearTimeout(timer);
  }
  rmSync(dataDir, { recursive: true, force: true });
}
