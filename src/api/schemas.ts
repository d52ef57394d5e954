/**
 * JSON Schemas of every request and response of API v1. They do three jobs from one source:
 * validate requests before anything reaches the engine, serialize responses, and generate the
 * OpenAPI 3.1 document at /openapi.json.
 *
 * Schemas check shape only (types, required and unknown fields, id alphabet, amount and currency
 * syntax). Whether an amount fits its currency's decimals, and whether a currency exists, needs
 * the currency table and is checked by the handlers, with the same error codes.
 */
import { CURRENCY_CODE_SOURCE, externalAccountId } from '../core/currency.js';
import { ERRORS } from '../core/errors.js';
import { ID_PATTERN_SOURCE, ID_SOURCE } from '../core/ids.js';
import { AMOUNT_CHARS_MAX, AMOUNT_PATTERN_SOURCE } from '../core/money.js';
import { BATCH_RECORDS_MAX } from '../core/transfer-record.js';

/** Paths may also name a currency's external account (admin reads only). */
const ACCOUNT_PATH_PATTERN_SOURCE = `^(?:${ID_SOURCE}|${externalAccountId(CURRENCY_CODE_SOURCE)})$`;
export const STATEMENT_LIMIT_MAX = 1000;
export const STATEMENT_LIMIT_DEFAULT = 50;

const id = (description: string) => ({ type: 'string', pattern: ID_PATTERN_SOURCE, description }) as const;
const amount = {
  type: 'string',
  pattern: AMOUNT_PATTERN_SOURCE,
  maxLength: AMOUNT_CHARS_MAX,
  description: "Major units as a decimal string, at most the currency's ISO 4217 decimals: \"12.34\"",
} as const;
const currency = { type: 'string', pattern: `^${CURRENCY_CODE_SOURCE}$`, description: 'ISO 4217 code, upper case' } as const;
const balance = { type: 'string', description: "Balance with exactly the currency's decimals" } as const;
const sequence = { type: 'integer', minimum: 0, description: 'Log position of the event' } as const;

const errorBody = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string', enum: Object.keys(ERRORS) }, message: { type: 'string' } },
    },
  },
} as const;

// ---- request bodies ----

export const openAccountBody = {
  type: 'object',
  additionalProperties: false,
  required: ['account_id', 'currency'],
  properties: { account_id: id('Customer account id'), currency, owner: id('Owner id; defaults to account_id') },
} as const;

export const moneyMovementBody = {
  type: 'object',
  additionalProperties: false,
  required: ['transaction_id', 'amount', 'currency'],
  properties: { transaction_id: id('Unique forever, shared with transfers'), amount, currency },
} as const;

export const transferBody = {
  type: 'object',
  additionalProperties: false,
  required: ['transaction_id', 'from_account', 'to_account', 'amount', 'currency'],
  properties: {
    transaction_id: id('Unique forever; a retry with the same body returns the first outcome'),
    from_account: id('Account debited'),
    to_account: id('Account credited'),
    amount,
    currency,
  },
} as const;

export const batchBody = {
  type: 'object',
  additionalProperties: false,
  required: ['transfers'],
  properties: { transfers: { type: 'array', minItems: 1, maxItems: BATCH_RECORDS_MAX, items: transferBody } },
} as const;

/**
 * What the batch route validates up front: the envelope only. Items are validated one by one
 * against `transferBody` so that a malformed item is rejected alone, not the whole request.
 */
export const batchEnvelopeBody = {
  ...batchBody,
  properties: { transfers: { ...batchBody.properties.transfers, items: {} } },
} as const;

export const createKeyBody = {
  type: 'object',
  additionalProperties: false,
  required: ['owner'],
  properties: { owner: id('Owner id the key acts for') },
} as const;

// ---- path and query ----

export const accountParams = {
  type: 'object',
  required: ['account_id'],
  properties: { account_id: { type: 'string', pattern: ACCOUNT_PATH_PATTERN_SOURCE } },
} as const;

export const customerAccountParams = {
  type: 'object',
  required: ['account_id'],
  properties: { account_id: id('Customer account id') },
} as const;

export const transferParams = {
  type: 'object',
  required: ['transaction_id'],
  properties: { transaction_id: id('Transaction id') },
} as const;

export const balanceQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    sequence: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Balance right after this log position' },
    at: { type: 'string', maxLength: 64, description: 'RFC 3339 time: balance as of the events recorded up to then' },
  },
} as const;

export const statementQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: STATEMENT_LIMIT_MAX, default: STATEMENT_LIMIT_DEFAULT },
    cursor: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,32}$', description: 'next_cursor of the previous page' },
  },
} as const;

// ---- responses ----

const account = {
  type: 'object',
  required: ['account_id', 'currency', 'owner', 'balance'],
  properties: { account_id: { type: 'string' }, currency: { type: 'string' }, owner: { type: 'string' }, balance },
} as const;

export const accountResponse = account;

export const accountWithSequenceResponse = {
  ...account,
  required: [...account.required, 'sequence'],
  properties: { ...account.properties, sequence },
} as const;

export const transferSuccessResponse = {
  type: 'object',
  required: ['status', 'transaction_id', 'sequence'],
  properties: { status: { type: 'string', enum: ['success'] }, transaction_id: { type: 'string' }, sequence },
} as const;

const batchItemResult = {
  oneOf: [
    transferSuccessResponse,
    {
      type: 'object',
      required: ['transaction_id', 'status', 'error'],
      properties: {
        transaction_id: { type: ['string', 'null'], description: 'null when the item had no usable transaction_id' },
        status: { type: 'string', enum: ['rejected'] },
        error: errorBody.properties.error,
      },
    },
  ],
} as const;

export const batchResponse = {
  type: 'object',
  required: ['results'],
  properties: { results: { type: 'array', items: batchItemResult } },
} as const;

export const transferViewResponse = {
  type: 'object',
  required: ['transaction_id', 'from_account', 'to_account', 'amount', 'currency', 'status', 'sequence'],
  properties: {
    transaction_id: { type: 'string' },
    from_account: { type: 'string' },
    to_account: { type: 'string' },
    amount: { type: 'string' },
    currency: { type: 'string' },
    status: { type: 'string', enum: ['success', 'rejected'] },
    sequence,
    error: errorBody.properties.error,
  },
} as const;

export const historicalBalanceResponse = {
  type: 'object',
  required: ['account_id', 'currency', 'balance', 'sequence'],
  properties: { account_id: { type: 'string' }, currency: { type: 'string' }, balance, sequence },
} as const;

export const statementResponse = {
  type: 'object',
  required: ['entries', 'next_cursor'],
  properties: {
    entries: {
      type: 'array',
      items: {
        type: 'object',
        required: ['transaction_id', 'amount', 'direction', 'balance_after', 'sequence', 'at'],
        properties: {
          transaction_id: { type: 'string' },
          amount: { type: 'string' },
          direction: { type: 'string', enum: ['debit', 'credit'] },
          balance_after: balance,
          sequence,
          at: { type: 'string', format: 'date-time' },
        },
      },
    },
    next_cursor: { type: ['string', 'null'] },
  },
} as const;

export const apiKeyResponse = {
  type: 'object',
  required: ['api_key', 'owner'],
  properties: { api_key: { type: 'string', description: 'Shown once; only its SHA-256 is stored' }, owner: { type: 'string' } },
} as const;

/** Error responses documented on every /v1 route, keyed by HTTP status. */
export function errorResponses(...statuses: number[]): Record<string, typeof errorBody> {
  const responses: Record<string, typeof errorBody> = {};
  for (const status of [400, 401, 429, 503, ...statuses]) responses[String(status)] = errorBody;
  return responses;
}

export { errorBody };
