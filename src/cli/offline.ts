/**
 * Offline commands on a data directory (the server must not be running on it):
 *   verify   — every checksum and the hash chain, a full replay, digests compared with snapshots;
 *   replay   — rebuild state from the first record (optionally up to a sequence), print its digest;
 *   balance  — an account's balance rebuilt by replaying up to a sequence or a time;
 *   snapshot — open the ledger (recovering it) and write a snapshot now.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { currencyByNumeric } from '../core/currency.js';
import { stateDigest } from '../core/digest.js';
import { formatAmount } from '../core/money.js';
import { CorruptLogError } from '../log/scan.js';
import { openLedger } from '../engine/ledger.js';
import { dataPaths, recover, type RecoveryOptions } from '../engine/recovery.js';
import { listSnapshots, loadSnapshot } from '../engine/snapshot.js';
import { startProgress } from './progress.js';

export const OFFLINE_HELP = `Offline commands (stop the server first):
  walletd verify   --data-dir D                 check checksums, hash chain, replay, snapshot digests
  walletd replay   --data-dir D [--to-sequence N]  rebuild state from the first record; prints "digest <hex>"
  walletd balance  ACCOUNT --data-dir D [--sequence N | --at TIME]
                                                  balance rebuilt from the log; last line is the amount
  walletd snapshot --data-dir D                   recover and write a snapshot now
`;

class UsageError extends Error {}

/** `--help` or `-h` among the options: not after `--`, where `balance -- --help` names an account. */
function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  const options = end === -1 ? args : args.slice(0, end);
  return options.includes('--help') || options.includes('-h');
}

function dataDirOf(values: { 'data-dir'?: string | undefined }): string {
  const dir = values['data-dir'] ?? process.env.WALLET_DATA_DIR ?? './data';
  if (!existsSync(dataPaths(dir).logDir)) throw new UsageError(`no walletd data directory at ${dir} (missing log/)`);
  return dir;
}

function replayWithProgress(dataDir: string, label: string, options: RecoveryOptions): ReturnType<typeof recover> {
  const progress = startProgress(label);
  try {
    return recover(dataDir, { ...options, onProgress: progress.update, warn: (message) => process.stderr.write(`warning: ${message}\n`) });
  } finally {
    progress.stop();
  }
}

function parseWholeNumber(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`${name} must be a whole number`);
  return Number(text);
}

export function verifyCommand(args: string[]): number {
  const { values } = parseArgs({ args, options: { 'data-dir': { type: 'string' } } });
  const dataDir = dataDirOf(values);
  const expected = new Map<number, string>();
  let badSnapshots = 0;
  for (const snapshot of listSnapshots(dataPaths(dataDir).snapshotDir)) {
    try {
      expected.set(snapshot.sequence, loadSnapshot(snapshot.path).meta.digest);
    } catch (error) {
      badSnapshots++;
      process.stdout.write(`bad snapshot ${snapshot.path}: ${(error as Error).message}\n`);
    }
  }
  const mismatches: number[] = [];
  const result = replayWithProgress(dataDir, 'verify', {
    fromGenesis: true,
    onFrameApplied: (state) => {
      const digest = expected.get(state.headSequence);
      if (digest !== undefined && digest !== stateDigest(state)) mismatches.push(state.headSequence);
    },
  });
  const head = result.state.headSequence;
  const unchecked = [...expected.keys()].filter((sequence) => sequence > head);
  if (mismatches.length > 0 || unchecked.length > 0 || badSnapshots > 0) {
    if (mismatches.length > 0) process.stdout.write(`snapshot digest differs from replay at sequence ${mismatches[0]}\n`);
    if (unchecked.length > 0) process.stdout.write(`snapshot at sequence ${unchecked[0]} is beyond the log head ${head}\n`);
    return 1;
  }
  const torn = result.tornTail === undefined ? '' : `; torn tail at ${result.tornTail.path} offset ${result.tornTail.offset} (cut on next start)`;
  process.stdout.write(`ok: ${head} events, ${result.state.accountCount} accounts, ${expected.size} snapshot(s) match, digest ${stateDigest(result.state)}${torn}\n`);
  return 0;
}

export function replayCommand(args: string[]): number {
  const { values } = parseArgs({ args, options: { 'data-dir': { type: 'string' }, 'to-sequence': { type: 'string' } } });
  const dataDir = dataDirOf(values);
  const toSequence = parseWholeNumber(values['to-sequence'], '--to-sequence');
  const started = performance.now();
  const result = replayWithProgress(dataDir, 'replay', { fromGenesis: true, ...(toSequence === undefined ? {} : { toSequence }) });
  if (toSequence !== undefined && result.state.headSequence < toSequence) {
    process.stderr.write(`--to-sequence ${toSequence} is beyond the log head ${result.state.headSequence}\n`);
    return 1;
  }
  const seconds = (performance.now() - started) / 1000;
  const rate = Math.round(result.replayedEvents / Math.max(seconds, 0.001));
  process.stdout.write(`replayed ${result.replayedEvents} events to sequence ${result.state.headSequence} in ${seconds.toFixed(2)} s (${rate} events/s)\n`);
  process.stdout.write(`digest ${stateDigest(result.state)}\n`);
  return 0;
}

export function balanceCommand(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'data-dir': { type: 'string' }, sequence: { type: 'string' }, at: { type: 'string' } },
  });
  const accountId = positionals[0];
  if (accountId === undefined || positionals.length > 1) throw new UsageError('give exactly one ACCOUNT');
  if (values.sequence !== undefined && values.at !== undefined) throw new UsageError('give --sequence or --at, not both');
  const dataDir = dataDirOf(values);
  const toSequence = parseWholeNumber(values.sequence, '--sequence');
  const toTimeMs = values.at === undefined ? undefined : Date.parse(values.at);
  if (toTimeMs !== undefined && Number.isNaN(toTimeMs)) throw new UsageError('--at must be an RFC 3339 time');
  const result = replayWithProgress(dataDir, 'balance', {
    ...(toSequence === undefined ? {} : { toSequence }),
    ...(toTimeMs === undefined ? {} : { toTimeMs }),
  });
  if (toSequence !== undefined && result.state.headSequence < toSequence) {
    process.stderr.write(`--sequence ${toSequence} is beyond the log head ${result.state.headSequence}\n`);
    return 1;
  }
  const index = result.state.accounts.findString(accountId);
  if (index < 0) {
    process.stderr.write(`account ${accountId} not found at sequence ${result.state.headSequence}\n`);
    return 1;
  }
  const currency = currencyByNumeric(result.state.currencyOf(index))!;
  process.stdout.write(`account ${accountId} (${currency.code}) at sequence ${result.state.headSequence}\n`);
  process.stdout.write(`${formatAmount(result.state.balanceOf(index), currency)}\n`);
  return 0;
}

export async function snapshotCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { 'data-dir': { type: 'string' } } });
  const dataDir = dataDirOf(values);
  const progress = startProgress('recover');
  // No log scrub: the command ends right after its snapshot (`walletd verify` checks the whole log).
  const ledger = await openLedger({ dataDir, onRecoveryProgress: progress.update, logScrubBytesPerSecond: 'off' });
  progress.stop();
  await ledger.snapshot();
  const stats = ledger.stats();
  await ledger.close();
  process.stdout.write(`snapshot written at sequence ${stats.lastSnapshotSequence}\n`);
  return 0;
}

/** Runs an offline command, turning usage and corruption errors into messages and exit codes. */
export async function runOffline(command: (args: string[]) => number | Promise<number>, args: string[]): Promise<number> {
  if (asksForHelp(args)) {
    process.stdout.write(OFFLINE_HELP);
    return 0;
  }
  try {
    return await command(args);
  } catch (error) {
    if (error instanceof CorruptLogError) {
      process.stdout.write(`corrupt: ${error.path} at byte offset ${error.offset} (first bad position, near sequence ${error.sequence}): ${error.reason}\n`);
      return 3;
    }
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      process.stderr.write(`${(error as Error).message}\n\n${OFFLINE_HELP}`);
      return 2;
    }
    throw error;
  }
}
