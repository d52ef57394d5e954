/**
 * Turns the SDK's typed arguments into transfer records, with the same rules as the HTTP API
 * (ids, ISO 4217 codes, amount strings with the currency's decimals). A call that fails here
 * never leaves the process: it is answered with the same code the server would give.
 */
import { currencyByCode } from '../core/currency.js';
import type { ErrorCode } from '../core/errors.js';
import { isValidId } from '../core/ids.js';
import { amountInRange, parseAmount } from '../core/money.js';
import type { TransferCommand, TransferKind } from '../core/transfer-record.js';

/** Major units as a string ("12.34"), as in the HTTP API, or minor units as a bigint (1234n). */
export type Amount = string | bigint;

export type TransferArgs = Readonly<{
  transactionId: string;
  fromAccount: string;
  toAccount: string;
  amount: Amount;
  currency: string;
}>;

/** A deposit credits `accountId` from the currency's external account; a withdrawal debits it. */
export type MovementArgs = Readonly<{ transactionId: string; accountId: string; amount: Amount; currency: string }>;

export function transferCommand(args: TransferArgs): TransferCommand | ErrorCode {
  if (!isValidId(args.transactionId) || !isValidId(args.fromAccount) || !isValidId(args.toAccount)) return 'invalid_request';
  return withMoney('transfer', args.transactionId, args.fromAccount, args.toAccount, args.amount, args.currency);
}

export function movementCommand(kind: 'deposit' | 'withdrawal', args: MovementArgs): TransferCommand | ErrorCode {
  if (!isValidId(args.transactionId) || !isValidId(args.accountId)) return 'invalid_request';
  const fromAccount = kind === 'withdrawal' ? args.accountId : '';
  const toAccount = kind === 'deposit' ? args.accountId : '';
  return withMoney(kind, args.transactionId, fromAccount, toAccount, args.amount, args.currency);
}

function withMoney(
  kind: TransferKind,
  transactionId: string,
  fromAccount: string,
  toAccount: string,
  amount: Amount,
  currencyCode: string,
): TransferCommand | ErrorCode {
  const currency = currencyByCode(currencyCode);
  if (currency === undefined) return 'unsupported_currency';
  // parseAmount bounds what it parses; minor units given as a bigint are bounded here.
  const amountMinor = typeof amount === 'bigint' ? amountInRange(amount) : parseAmount(amount, currency);
  if (amountMinor === undefined) return 'invalid_amount';
  return { kind, transactionId, fromAccount, toAccount, amountMinor, currencyNumeric: currency.numeric };
}
