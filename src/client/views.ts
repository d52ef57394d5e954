/**
 * What the SDK hands back for accounts and transfers: the wire views of src/protocol/frame.ts
 * turned into the shapes (and strings) of the HTTP API.
 */
import { currencyByNumeric, externalAccountId } from '../core/currency.js';
import type { Currency } from '../core/currency.js';
import { codeOfWire } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { formatAmount } from '../core/money.js';
import type { TransferKind } from '../core/transfer-record.js';
import { OpenedFlag } from '../protocol/constants.js';
import type { AccountViewBody, TransferViewBody } from '../protocol/frame.js';

export type AccountInfo = Readonly<{
  accountId: string;
  currency: string;
  owner: string;
  /** Major units with exactly the currency's decimals, as the HTTP API prints it. */
  balance: string;
  balanceMinor: bigint;
  /** Log position the balance reflects. */
  sequence: number;
}>;

export type TransferInfo = Readonly<{
  transactionId: string;
  kind: TransferKind;
  /** '@external:USD' for a deposit, as in the HTTP API. */
  fromAccount: string;
  /** '@external:USD' for a withdrawal. */
  toAccount: string;
  amount: string;
  amountMinor: bigint;
  currency: string;
  status: 'success' | 'rejected';
  /** 'ok' or the logged rejection. */
  code: ErrorCode;
  sequence: number;
  atMs: number;
}>;

export function accountInfo(view: AccountViewBody): AccountInfo | undefined {
  const currency = currencyByNumeric(view.currencyNumeric);
  if (currency === undefined) return undefined;
  return {
    accountId: view.accountId,
    currency: currency.code,
    owner: view.owner,
    balance: formatAmount(view.balance, currency),
    balanceMinor: view.balance,
    sequence: view.sequence,
  };
}

export function wasCreated(view: AccountViewBody): boolean {
  return view.opened === OpenedFlag.created;
}

export function transferInfo(view: TransferViewBody): TransferInfo | undefined {
  const currency: Currency | undefined = currencyByNumeric(view.record.currencyNumeric);
  const code = codeOfWire(view.code);
  if (currency === undefined || code === undefined) return undefined;
  const external = externalAccountId(currency.code);
  return {
    transactionId: view.record.transactionId,
    kind: view.record.kind,
    fromAccount: view.record.fromAccount === '' ? external : view.record.fromAccount,
    toAccount: view.record.toAccount === '' ? external : view.record.toAccount,
    amount: formatAmount(view.record.amountMinor, currency),
    amountMinor: view.record.amountMinor,
    currency: currency.code,
    status: code === 'ok' ? 'success' : 'rejected',
    code,
    sequence: view.sequence,
    atMs: view.atMs,
  };
}
