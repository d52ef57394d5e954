/**
 * Every error the HTTP API answers, rendered as `{"error": {"code", "message"}}` with a code
 * of the one catalogue (src/core/errors.ts) and the HTTP status that catalogue assigns.
 *
 * Fastify's own errors (bad JSON, body too large, schema validation, unknown route) are
 * translated here so no response ever carries a framework-specific body.
 */
import type { ErrorObject } from 'ajv';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, WalletError, statusOf, type ErrorCode } from '../core/errors.js';

export type ErrorBody = { error: { code: ErrorCode; message: string } };

export function errorBody(code: ErrorCode, message: string = ERRORS[code].message): ErrorBody {
  return { error: { code, message } };
}

/**
 * `status` defaults to the catalogue's. The one override: `account_not_found` is a 422 business
 * rejection when the engine decides it for a transfer, but a 404 for a lookup (API.md).
 */
export function sendError(reply: FastifyReply, code: ErrorCode, message?: string, status: number = statusOf(code)): FastifyReply {
  return reply.code(status).send(errorBody(code, message));
}

const LOOKUP_NOT_FOUND_STATUS = 404;

/** A lookup (GET, or the account in a deposit/withdrawal path) found no such account: 404. */
export function sendAccountNotFound(reply: FastifyReply): FastifyReply {
  return sendError(reply, 'account_not_found', 'no account with this id', LOOKUP_NOT_FOUND_STATUS);
}

/**
 * Maps the first schema violation to an API code. A present but malformed `amount` is
 * invalid_amount (a JSON number included), a present but malformed `currency` string is
 * unsupported_currency; everything else (missing or unknown field, wrong type, bad id) is
 * invalid_request.
 */
export function codeOfSchemaError(error: Pick<ErrorObject, 'instancePath' | 'keyword'>): ErrorCode {
  const field = error.instancePath.slice(error.instancePath.lastIndexOf('/') + 1);
  if (field === 'amount') return 'invalid_amount';
  if (field === 'currency' && error.keyword !== 'type') return 'unsupported_currency';
  return 'invalid_request';
}

/** A human message naming the field, without echoing the (possibly huge) offending value. */
export function messageOfSchemaError(error: Pick<ErrorObject, 'instancePath' | 'keyword' | 'message' | 'params'>, where: string): string {
  const missing = (error.params as { missingProperty?: unknown; additionalProperty?: unknown }) ?? {};
  if (error.keyword === 'required') return `${where}: missing field '${String(missing.missingProperty)}'`;
  if (error.keyword === 'additionalProperties') return `${where}: unknown field '${String(missing.additionalProperty)}'`;
  const path = error.instancePath === '' ? where : `${where} ${error.instancePath.slice(1).replaceAll('/', '.')}`;
  return `${path} ${error.message ?? 'is invalid'}`;
}

/** Fastify's error codes for request bodies it could not read. */
const BODY_ERRORS: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'invalid_request',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_EMPTY_TYPE: 'invalid_request',
  FST_ERR_CTP_INVALID_TYPE: 'invalid_request',
};

export function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (error instanceof WalletError) {
    if (error.status >= 500) request.log.warn({ code: error.code }, error.message);
    sendError(reply, error.code, error.message);
    return;
  }
  if (error.validation !== undefined && error.validation.length > 0) {
    const first = error.validation[0] as ErrorObject;
    const where = error.validationContext ?? 'request';
    sendError(reply, where === 'body' ? codeOfSchemaError(first) : 'invalid_request', messageOfSchemaError(first, where));
    return;
  }
  const bodyCode = error.code === undefined ? undefined : BODY_ERRORS[error.code];
  if (bodyCode !== undefined) {
    sendError(reply, bodyCode, bodyCode === 'payload_too_large' ? undefined : error.message);
    return;
  }
  if (error instanceof SyntaxError || error.statusCode === 400) {
    // Malformed JSON (secure-json-parse and JSON.parse throw SyntaxError) and other 400s.
    sendError(reply, 'invalid_request', `malformed request: ${error.message}`);
    return;
  }
  request.log.error({ err: error }, 'unhandled error');
  sendError(reply, 'internal_error');
}

export function handleNotFound(_request: FastifyRequest, reply: FastifyReply): void {
  sendError(reply, 'not_found');
}
