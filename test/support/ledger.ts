/** Helpers for engine tests: temp data dirs, terse command builders, log frame locations, the CLI. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { currencyByCode } from '../../src/core/currency.js';
import { encodeTransferBatch, type TransferCommand } from '../../src/core/transfer-record.js';
import { openLedger } from '../../src/engine/ledger.js';
import { dataPaths } from '../../src/engine/recovery.js';
import { listSnapshots } from '../../src/engine/snapshot.js';
import { decodeFrameHeader, FRAME_HEADER_BYTES } from '../../src/log/frame.js';
import { listSegments } from '../../src/log/segments.js';
import type { Ledger, LedgerOptions, LogScrubStatus, TransferResults } from '../../src/engine/types.js';

export function tempDir(prefix = 'walletd-test-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Runs `run` with a fresh temporary directory, removed afterwards whatever happens. */
export async function inTempDir<T>(run: (dir: { path: string }) => Promise<T>): Promise<T> {
  const dir = tempDir();
  try {
    return await run(dir);
  } finally {
    dir.remove();
  }
}

export function numericOf(code: string): number {
  const currency = currencyByCode(code);
  if (currency === undefined) throw new Error(`unknown currency ${code}`);
  return currency.numeric;
}

export function transfer(transactionId: string, fromAccount: string, toAccount: string, amountMinor: bigint, currency = 'USD'): TransferCommand {
  return { kind: 'transfer', transactionId, fromAccount, toAccount, amountMinor, currencyNumeric: numericOf(currency) };
}

export function deposit(transactionId: string, toAccount: string, amountMinor: bigint, currency = 'USD'): TransferCommand {
  return { kind: 'deposit', transactionId, fromAccount: '', toAccount, amountMinor, currencyNumeric: numericOf(currency) };
}

export function withdrawal(transactionId: string, fromAccount: string, amountMinor: bigint, currency = 'USD'): TransferCommand {
  return { kind: 'withdrawal', transactionId, fromAccount, toAccount: '', amountMinor, currencyNumeric: numericOf(currency) };
}

export async function submit(ledger: Ledger, commands: readonly TransferCommand[]): Promise<TransferResults> {
  return ledger.submitTransfers({ bytes: encodeTransferBatch(commands), count: commands.length });
}

/** The ledger with `submitTransfers` replaced (tests that observe or delay batches); every other member is the ledger's own. */
export function withSubmit(ledger: Ledger, submitTransfers: Ledger['submitTransfers']): Ledger {
  return new Proxy(ledger, { get: (target, key) => (key === 'submitTransfers' ? submitTransfers : (Reflect.get(target, key) as (...args: unknown[]) => unknown).bind(target)) });
}

export async function withLedger<T>(dataDir: string, run: (ledger: Ledger) => Promise<T>, options: Partial<LedgerOptions> = {}): Promise<T> {
  const ledger = await openLedger({ dataDir, fsync: false, ...options });
  try {
    return await run(ledger);
  } finally {
    await ledger.close();
  }
}

/** One event-loop turn (setImmediate): lets the engine take a drain. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Resolves once `ready()` holds (checked every 5 ms); fails naming `what` after `timeoutMs`. */
export async function waitUntil(ready: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The ledger's log scrub once it is no longer running (polled; fails the test after `timeoutMs`). */
export async function scrubEnded(ledger: Ledger, timeoutMs = 20_000): Promise<LogScrubStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = ledger.logScrub();
    if (status.state !== 'running') return status;
    if (Date.now() > deadline) throw new Error(`the log scrub still runs after ${timeoutMs} ms: ${JSON.stringify(status)}`);
    await sleep(10);
  }
}

/** withLedger on a fresh temporary data directory, removed afterwards. */
export async function withTempLedger<T>(run: (ledger: Ledger, dir: { path: string }) => Promise<T>, options: Partial<LedgerOptions> = {}): Promise<T> {
  return inTempDir((dir) => withLedger(dir.path, (ledger) => run(ledger, dir), options));
}

/** Where one log frame sits on disk (from walking the segment's frame headers). */
export type FrameLocation = Readonly<{ path: string; offset: number; bytes: number; firstSequence: number; eventCount: number }>;

/** Every frame of every segment of a data directory, oldest first; stops at the first bad header. */
export function logFrames(dataDir: string): FrameLocation[] {
  const frames: FrameLocation[] = [];
  for (const segment of listSegments(dataPaths(dataDir).logDir)) {
    const bytes = readFileSync(segment.path);
    let offset = 0;
    while (offset + FRAME_HEADER_BYTES <= bytes.length) {
      const check = decodeFrameHeader(bytes, offset);
      if (!check.ok) break;
      const size = FRAME_HEADER_BYTES + check.header.bodyBytes;
      if (offset + size > bytes.length) break;
      frames.push({ path: segment.path, offset, bytes: size, firstSequence: check.header.firstSequence, eventCount: check.header.eventCount });
      offset += size;
    }
  }
  return frames;
}

export const WALLETD_BIN = resolve(import.meta.dirname, '..', '..', '..', 'bin', 'walletd.js');

/** Runs `node bin/walletd.js ARGS` to completion (the offline commands). */
export function runWalletd(args: readonly string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; stdout: string; stderr: string } {
  const child = spawnSync(process.execPath, [WALLETD_BIN, ...args], { encoding: 'utf8', env, timeout: 60_000 });
  return { status: child.status, stdout: child.stdout, stderr: child.stderr };
}

/** The newest snapshot in a data directory; throws when there is none. */
export function newestSnapshot(dataDir: string): { sequence: number; path: string } {
  const newest = listSnapshots(dataPaths(dataDir).snapshotDir)[0];
  if (newest === undefined) throw new Error(`no snapshot in ${dataDir}`);
  return newest;
}
