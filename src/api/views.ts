/**
 * Engine views rendered as API v1 JSON bodies. Every body is a pure function of the engine's
 * answer, which is what makes an idempotent retry render byte-for-byte the same response.
 */
import { codeOfWire, messageOf, statusOf, Wire, type ErrorCode } from '../core/errors.js';
import { formatAmount } from '../core/money.js';
import type { AccountView, HistoricalBalance, StatementEntry, TransferView } from '../engine/types.js';
import { errorBody, type ErrorBody } from './http-errors.js';
import type { RecordOutcome } from './transfer-submitter.js';

export function accountBody(account: AccountView) {
  return {
    account_id: account.accountId,
    currency: account.currency.code,
    owner: account.owner,
    balance: formatAmount(account.balance, account.currency),
  };
}

export function accountWithSequenceBody(account: AccountView) {
  return { ...accountBody(account), sequence: account.sequence };
}

export function historicalBalanceBody(balance: Extract<HistoricalBalance, { status: 'ok' }>) {
  return {
    account_id: balance.accountId,
    currency: balance.currency.code,
    balance: formatAmount(balance.balance, balance.currency),
    sequence: balance.sequence,
  };
}

export function transferViewBody(view: TransferView) {
  const body = {
    transaction_id: view.transactionId,
    from_account: view.fromAccount,
    to_account: view.toAccount,
    amount: formatAmount(view.amount, view.currency),
    currency: view.currency.code,
    status: view.code === 'ok' ? 'success' : 'rejected',
    sequence: view.sequence,
  };
  return view.code === 'ok' ? body : { ...body, error: { code: view.code, message: messageOf(view.code) } };
}

export function statementEntryBody(entry: StatementEntry, currency: AccountView['currency']) {
  return {
    transaction_id: entry.transactionId,
    amount: formatAmount(entry.amount, currency),
    direction: entry.direction,
    balance_after: formatAmount(entry.balanceAfter, currency),
    sequence: entry.sequence,
    at: new Date(entry.atMs).toISOString(),
  };
}

export type TransferReply = Readonly<{ status: number; body: SuccessBody | ErrorBody }>;
type SuccessBody = { status: 'success'; transaction_id: string; sequence: number };

/** The single-transfer (and deposit/withdrawal) response for an engine outcome. */
export function transferReplyOf(transactionId: string, outcome: RecordOutcome): TransferReply {
  const code = codeOfOutcome(outcome);
  if (code === 'ok') return { status: 200, body: { status: 'success', transaction_id: transactionId, sequence: outcome.sequence } };
  return { status: statusOf(code), body: errorBody(code) };
}

export type BatchItemResult =
  | Readonly<{ transaction_id: string; status: 'success'; sequence: number }>
  | Readonly<{ transaction_id: string | null; status: 'rejected'; error: { code: ErrorCode; message: string } }>;

export function batchItemOf(transactionId: string, outcome: RecordOutcome): BatchItemResult {
  const code = codeOfOutcome(outcome);
  if (code === 'ok') return { transaction_id: transactionId, status: 'success', sequence: outcome.sequence };
  return rejectedItem(transactionId, code, messageOf(code));
}

/**
 * batchItemOf rendered as JSON text, without building the object first: the batch endpoint
 * answers up to 8,190 of these, and object + JSON.stringify cost 0.37 µs an item against 0.13
 * for the template (measured). The template is used for successes only, whose transaction id
 * reached the engine and so matched the id pattern ([A-Za-z0-9_.:-]): nothing in it needs
 * escaping. A test checks the text equals JSON.stringify(batchItemOf(...)).
 */
export function batchItemJson(transactionId: string, wire: number, sequence: number): string {
  if (wire === Wire.ok) return `{"transaction_id":"${transactionId}","status":"success","sequence":${sequence}}`;
  return JSON.stringify(batchItemOf(transactionId, { wire, sequence }));
}

export function rejectedItem(transactionId: string | null, code: ErrorCode, message: string): BatchItemResult {
  return { transaction_id: transactionId, status: 'rejected', error: { code, message } };
}

/** An engine wire code outside the catalogue is an engine bug; answer 500 rather than guess. */
function codeOfOutcome(outcome: RecordOutcome): ErrorCode {
  return codeOfWire(outcome.wire) ?? 'internal_error';
}
