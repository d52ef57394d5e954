/**
 * What the micro-benchmarks share: their transfer records (between accounts named
 * `acct-<n>`, in USD, drawn uniformly, as the engine bench's uniform scenario) and the median of
 * their timings.
 */
import { currencyByCode } from '../src/core/currency.js';
import { RECORD_BYTES, writeTransferRecord } from '../src/core/transfer-record.js';
import type { Prng } from '../src/stdx/prng.js';

/** ISO numeric code of the benchmarks' one currency (USD). */
export const USD = currencyByCode('USD')!.numeric;

export function benchAccountId(index: number): string {
  return `acct-${index}`;
}

/**
 * `count` transfers of 1 minor unit, each between two distinct accounts of `accounts` drawn
 * uniformly (source first, then the target among the others), with the transaction ids given.
 */
export function uniformTransfers(prng: Prng, count: number, accounts: number, transactionId: (index: number) => string): Buffer {
  const bytes = Buffer.alloc(count * RECORD_BYTES);
  for (let index = 0; index < count; index++) {
    const from = prng.below(accounts);
    const to = (from + 1 + prng.below(accounts - 1)) % accounts;
    writeTransferRecord(bytes, index, {
      kind: 'transfer',
      transactionId: transactionId(index),
      fromAccount: benchAccountId(from),
      toAccount: benchAccountId(to),
      amountMinor: 1n,
      currencyNumeric: USD,
    });
  }
  return bytes;
}

/** A deposit of `amountMinor` into each of `accounts` accounts, with the transaction ids given. */
export function fundingDeposits(accounts: number, amountMinor: bigint, transactionId: (index: number) => string): Buffer {
  const bytes = Buffer.alloc(accounts * RECORD_BYTES);
  for (let index = 0; index < accounts; index++) {
    writeTransferRecord(bytes, index, { kind: 'deposit', transactionId: transactionId(index), fromAccount: '', toAccount: benchAccountId(index), amountMinor, currencyNumeric: USD });
  }
  return bytes;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
