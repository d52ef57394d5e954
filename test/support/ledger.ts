/** Helpers for engine tests: temp data dirs and terse command builders. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currencyByCode } from '../../src/core/currency.js';
import { encodeTransferBatch, type TransferCommand } from '../../src/core/transfer-record.js';
import { openLedger } from '../../src/engine/ledger.js';
import type { Ledger, LedgerOptions, TransferResults } from '../../src/engine/types.js';

export function tempDir(prefix = 'walletd-test-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
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

export async function withLedger<T>(dataDir: string, run: (ledger: Ledger) => Promise<T>, options: Partial<LedgerOptions> = {}): Promise<T> {
  const ledger = await openLedger({ dataDir, fsync: false, ...options });
  try {
    return await run(ledger);
  } finally {
    await ledger.close();
  }
}
