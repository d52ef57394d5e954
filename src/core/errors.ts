/**
 * The one catalogue of result and error codes, shared by core, engine, binary protocol, HTTP
 * and docs (docs/ERRORS.md is checked against this table by a test).
 *
 * `wire` is the stable numeric code used in the log and on the binary protocol: never reuse or
 * renumber one. `status` is the HTTP status the API answers with.
 */
export const ERRORS = {
  ok: { wire: 0, status: 200, message: 'success' },
  // Business rejections: decided by the core, logged and remembered under the transaction id.
  insufficient_funds: { wire: 1, status: 422, message: 'the source account balance is too low for this amount' },
  currency_mismatch: { wire: 2, status: 422, message: 'an account does not hold the currency of this transfer' },
  same_account: { wire: 3, status: 422, message: 'source and destination are the same account' },
  account_not_found: { wire: 4, status: 422, message: 'an account of this transfer does not exist' },
  balance_overflow: { wire: 5, status: 422, message: 'the destination balance would exceed 2^63-1 minor units' },
  // Stopped before the ledger: never logged, never remembered.
  idempotency_conflict: { wire: 6, status: 409, message: 'this transaction_id was already used with a different request' },
  invalid_amount: { wire: 7, status: 400, message: 'amount must be a positive decimal string within the currency precision' },
  unsupported_currency: { wire: 8, status: 400, message: 'unknown or unsupported ISO 4217 currency code' },
  account_exists: { wire: 9, status: 409, message: 'an account with this id exists with another currency or owner' },
  invalid_request: { wire: 10, status: 400, message: 'the request is malformed' },
  unauthorized: { wire: 11, status: 401, message: 'missing or unknown credentials' },
  forbidden: { wire: 12, status: 403, message: 'these credentials may not perform this operation' },
  transfer_not_found: { wire: 13, status: 404, message: 'no transfer with this transaction_id' },
  payload_too_large: { wire: 14, status: 413, message: 'the request body exceeds the size limit' },
  rate_limited: { wire: 15, status: 429, message: 'too many requests for this key; retry later' },
  // Operational failures: typed, retryable where the operation is idempotent.
  overloaded: { wire: 16, status: 503, message: 'the engine queue is full; retry later' },
  shutting_down: { wire: 17, status: 503, message: 'the service is shutting down' },
  not_ready: { wire: 18, status: 503, message: 'the service is recovering and not ready for writes' },
  request_timeout: { wire: 19, status: 503, message: 'the request did not complete in time' },
  protocol_error: { wire: 20, status: 400, message: 'malformed binary protocol frame' },
  internal_error: { wire: 21, status: 500, message: 'internal error' },
  not_found: { wire: 22, status: 404, message: 'no such route' },
  // A configured limit of the ledger's size reached: new transaction ids (or accounts) are
  // refused, while retries of remembered ids still get their first outcome.
  ledger_full: { wire: 23, status: 507, message: 'the ledger holds as many transaction ids or accounts as it is configured to; new ones are refused' },
} as const;

export type ErrorCode = keyof typeof ERRORS;
export type ResultCode = ErrorCode;

const codeByWire: ErrorCode[] = [];
for (const [code, entry] of Object.entries(ERRORS)) {
  codeByWire[entry.wire] = code as ErrorCode;
}

export function wireOf(code: ErrorCode): number {
  return ERRORS[code].wire;
}

export function codeOfWire(wire: number): ErrorCode | undefined {
  return codeByWire[wire];
}

export function statusOf(code: ErrorCode): number {
  return ERRORS[code].status;
}

export function messageOf(code: ErrorCode): string {
  return ERRORS[code].message;
}

/** Numeric wire constants for the hot path (switch/compare on small integers, not strings). */
export const Wire = {
  ok: 0,
  insufficient_funds: 1,
  currency_mismatch: 2,
  same_account: 3,
  account_not_found: 4,
  balance_overflow: 5,
  idempotency_conflict: 6,
  invalid_amount: 7,
  unsupported_currency: 8,
  account_exists: 9,
  invalid_request: 10,
  overloaded: 16,
  shutting_down: 17,
  ledger_full: 23,
} as const satisfies { [K in ErrorCode]?: (typeof ERRORS)[K]['wire'] };

/** True when an outcome with this wire code is written to the log and gets a sequence. */
export function isLoggedOutcome(wire: number): boolean {
  return wire >= 0 && wire <= 5;
}

/** An operational or user error with a stable code, carried unchanged through every layer. */
export class WalletError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string = ERRORS[code].message) {
    super(message);
    this.code = code;
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
}
