/**
 * Accounts: open, read, historical balance, statement.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { currencyByCode } from '../core/currency.js';
import type { AccountView, BalanceQuery, Ledger } from '../engine/types.js';
import { mayOpenAccountFor, mayReadAccount } from '../auth/access.js';
import { principalOf, type ApiContext } from './context.js';
import { sendAccountNotFound, sendError } from './http-errors.js';
import { v1Route } from './route-options.js';
import * as schemas from './schemas.js';
import { withTimeout } from './transfer-submitter.js';
import { accountBody, accountWithSequenceBody, historicalBalanceBody, statementEntryBody } from './views.js';

type OpenAccountBody = { account_id: string; currency: string; owner?: string };
type AccountParams = { account_id: string };
type BalanceQueryString = { sequence?: number; at?: string };
type StatementQueryString = { limit: number; cursor?: string };

export function registerAccountRoutes(app: FastifyInstance, context: ApiContext): void {
  app.post<{ Body: OpenAccountBody }>(
    '/v1/accounts',
    v1Route({
      access: 'authenticated',
      tag: 'accounts',
      summary: 'Open an account (idempotent)',
      body: schemas.openAccountBody,
      ok: { 200: schemas.accountResponse, 201: schemas.accountResponse },
      errors: [403, 409, 507],
    }),
    async (request, reply) => {
      const { account_id: accountId, currency: currencyCode } = request.body;
      const owner = request.body.owner ?? accountId;
      if (currencyByCode(currencyCode) === undefined) return sendError(reply, 'unsupported_currency', `unsupported currency '${currencyCode}'`);
      if (!mayOpenAccountFor(principalOf(request), owner)) return sendError(reply, 'forbidden', 'an API key may open accounts only for its own owner');
      const outcome = await withTimeout(context.ledger.openAccount({ accountId, currencyCode, owner }), context.config.requestTimeoutMs);
      if (outcome.status === 'rejected') return sendError(reply, outcome.code);
      return reply.code(outcome.status === 'created' ? 201 : 200).send(accountBody(outcome.account));
    },
  );

  app.get<{ Params: AccountParams }>(
    '/v1/accounts/:account_id',
    v1Route({
      access: 'authenticated',
      tag: 'accounts',
      summary: 'Read an account and its current balance',
      params: schemas.accountParams,
      ok: { 200: schemas.accountWithSequenceResponse },
      errors: [403, 404],
    }),
    async (request, reply) => {
      const found = await readableAccount(context, request, reply, 'view-is-answer');
      if (found === undefined) return reply;
      return reply.send(accountWithSequenceBody(found.account));
    },
  );

  app.get<{ Params: AccountParams; Querystring: BalanceQueryString }>(
    '/v1/accounts/:account_id/balance',
    v1Route({
      access: 'authenticated',
      tag: 'accounts',
      summary: 'Balance now, right after log position `sequence`, or as of time `at`',
      params: schemas.accountParams,
      querystring: schemas.balanceQuery,
      ok: { 200: schemas.historicalBalanceResponse },
      errors: [403, 404],
    }),
    async (request, reply) => {
      const query = balanceQueryOf(request.query);
      if (typeof query === 'string') return sendError(reply, 'invalid_request', query);
      const found = await readableAccount(context, request, reply, 'read-waits');
      if (found === undefined) return reply;
      const balance = await withTimeout(found.ledger.balanceAt(found.account.accountId, query), context.config.requestTimeoutMs);
      if (balance.status === 'account_not_found') return sendAccountNotFound(reply);
      if (balance.status === 'beyond_head') return sendError(reply, 'invalid_request', 'sequence is beyond the head of the log');
      return reply.send(historicalBalanceBody(balance));
    },
  );

  app.get<{ Params: AccountParams; Querystring: StatementQueryString }>(
    '/v1/accounts/:account_id/transactions',
    v1Route({
      access: 'authenticated',
      tag: 'accounts',
      summary: 'Statement, newest first, paged by an opaque cursor',
      params: schemas.accountParams,
      querystring: schemas.statementQuery,
      ok: { 200: schemas.statementResponse },
      errors: [403, 404],
    }),
    async (request, reply) => {
      const beforeSequence = request.query.cursor === undefined ? undefined : decodeCursor(request.query.cursor);
      if (beforeSequence === null) return sendError(reply, 'invalid_request', 'cursor is not one this service issued');
      const found = await readableAccount(context, request, reply, 'read-waits');
      if (found === undefined) return reply;
      const { ledger, account } = found;
      const statement = await withTimeout(ledger.statement(account.accountId, request.query.limit, beforeSequence), context.config.requestTimeoutMs);
      if (statement === undefined) return sendAccountNotFound(reply);
      return reply.send({
        entries: statement.entries.map((entry) => statementEntryBody(entry, account.currency)),
        next_cursor: statement.nextBeforeSequence === null ? null : encodeCursor(statement.nextBeforeSequence),
      });
    },
  );
}

/**
 * Who waits for durability after readableAccount:
 * - 'view-is-answer': the view itself is what is shown, so it is read, then waited for
 *   (waiting first would let frames decided meanwhile into the read).
 * - 'read-waits': the read that follows (balanceAt, statement) waits by itself, so access is
 *   decided on the live view (owner and currency never change) and that wait is the only one;
 *   a refusal still waits for the account's position, so a 403 never tells of an opening not
 *   yet durable.
 */
type FollowingRead = 'view-is-answer' | 'read-waits';

/** The path's account when the caller may read it; otherwise answers 404 or 403 and returns undefined. */
async function readableAccount(
  context: ApiContext,
  request: FastifyRequest<{ Params: AccountParams }>,
  reply: FastifyReply,
  following: FollowingRead,
): Promise<{ ledger: Ledger; account: AccountView } | undefined> {
  const { ledger, config } = context;
  const accountId = request.params.account_id;
  const readWaits = following === 'read-waits';
  const account = readWaits ? ledger.account(accountId) : await withTimeout(ledger.durableAccount(accountId), config.requestTimeoutMs);
  if (account === undefined) {
    sendAccountNotFound(reply);
    return undefined;
  }
  if (!mayReadAccount(principalOf(request), account)) {
    if (readWaits) await withTimeout(ledger.durableAccount(accountId), config.requestTimeoutMs);
    sendError(reply, 'forbidden', 'this API key may read only its own accounts');
    return undefined;
  }
  return { ledger, account };
}

/** RFC 3339 date-time with a mandatory offset (Z or ±hh:mm), as written in the spec. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** The engine query, or a message saying why the query string is invalid. */
export function balanceQueryOf(query: BalanceQueryString): BalanceQuery | string {
  if (query.sequence !== undefined && query.at !== undefined) return 'give either sequence or at, not both';
  if (query.sequence !== undefined) return { sequence: query.sequence };
  if (query.at === undefined) return {};
  if (!RFC3339.test(query.at)) return 'at must be an RFC 3339 time such as 2024-05-01T12:00:00Z';
  const atMs = Date.parse(query.at.toUpperCase().replace(' ', 'T'));
  if (!Number.isFinite(atMs)) return 'at is not a valid time';
  return { atMs };
}

/**
 * Cursors are opaque to clients: base64url of "s<sequence>". The prefix leaves room for other
 * cursor kinds without breaking issued ones.
 */
export function encodeCursor(beforeSequence: number): string {
  return Buffer.from(`s${beforeSequence}`, 'latin1').toString('base64url');
}

/** The sequence a cursor continues before, or null when it is not a cursor we issued. */
export function decodeCursor(cursor: string): number | null {
  const text = Buffer.from(cursor, 'base64url').toString('latin1');
  if (!/^s[0-9]{1,16}$/.test(text)) return null;
  const sequence = Number(text.slice(1));
  return Number.isSafeInteger(sequence) && sequence > 0 ? sequence : null;
}
