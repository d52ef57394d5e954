/**
 * From schema-checked JSON to the engine's `TransferCommand`: the checks a schema cannot make
 * (the currency exists; the amount has no more decimals than the currency and fits 2^63−1).
 */
import { currencyByCode } from '../core/currency.js';
import type { ErrorCode } from '../core/errors.js';
import { parseAmount } from '../core/money.js';
import type { TransferCommand, TransferKind } from '../core/transfer-record.js';

export type TransferBody = Readonly<{
  transaction_id: string;
  from_account: string;
  to_account: string;
  amount: string;
  currency: string;
}>;

export type MoneyMovementBody = Readonly<{ transaction_id: string; amount: string; currency: string }>;

export type ParsedCommand =
  | Readonly<{ ok: true; command: TransferCommand }>
  | Readonly<{ ok: false; code: ErrorCode; message: string }>;

type ParsedMoney = Readonly<{ ok: true; amountMinor: bigint; currencyNumeric: number }> | Readonly<{ ok: false; code: ErrorCode; message: string }>;

function parseMoney(amount: string, currencyCode: string): ParsedMoney {
  const currency = currencyByCode(currencyCode);
  if (currency === undefined) return { ok: false, code: 'unsupported_currency', message: `unsupported currency '${currencyCode}'` };
  const amountMinor = parseAmount(amount, currency);
  if (amountMinor === undefined) {
    return {
      ok: false,
      code: 'invalid_amount',
      message: `amount must be a positive decimal string with at most ${currency.exponent} decimals for ${currency.code}, below 2^63 minor units`,
    };
  }
  return { ok: true, amountMinor, currencyNumeric: currency.numeric };
}

export function transferCommandOf(body: TransferBody): ParsedCommand {
  return commandOf('transfer', body, body.from_account, body.to_account);
}

/** A deposit credits `accountId` from the external account; a withdrawal debits it. */
export function movementCommandOf(kind: 'deposit' | 'withdrawal', accountId: string, body: MoneyMovementBody): ParsedCommand {
  return commandOf(kind, body, kind === 'withdrawal' ? accountId : '', kind === 'deposit' ? accountId : '');
}

function commandOf(kind: TransferKind, body: MoneyMovementBody, fromAccount: string, toAccount: string): ParsedCommand {
  const money = parseMoney(body.amount, body.currency);
  if (!money.ok) return money;
  return {
    ok: true,
    command: { kind, transactionId: body.transaction_id, fromAccount, toAccount, amountMinor: money.amountMinor, currencyNumeric: money.currencyNumeric },
  };
}
