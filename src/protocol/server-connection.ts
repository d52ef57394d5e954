/**
 * One client connection on the server side: handshake, then frames in, answers out.
 *
 * Flow control: a connection reads while it has fewer than `inFlightRequestsMax` requests in
 * the engine, its transport accepts writes, and the shared body budget has room. Otherwise it
 * keeps the unread rest of its chunk, pauses the transport, and the client's TCP window fills.
 *
 * Failure: a malformed frame (see parser.ts) is never acted on. The connection stops reading,
 * lets the requests already in the engine finish and answers them, then sends one
 * protocol_error frame and closes. Nothing of the bad frame, nor of anything after it, is
 * applied.
 *
 * Requests reach the engine in the order their frames arrived: each handler calls the ledger
 * synchronously, before its first await.
 */
import { assert, AssertionError } from '../stdx/assert.js';
import { ERRORS, WalletError, wireOf } from '../core/errors.js';
import { currencyByNumeric } from '../core/currency.js';
import { isExternalId, isValidId } from '../core/ids.js';
import { BATCH_RECORDS_MAX, RECORD_BYTES } from '../core/transfer-record.js';
import type { TransferKind } from '../core/transfer-record.js';
import { mayDebitRecord, mayOpenAccountFor, mayReadAccount, mayReadTransfer } from '../auth/access.js';
import type { Principal, Authenticate } from '../auth/principal.js';
import type { AccountView, Ledger, TransferResults, TransferView } from '../engine/types.js';
import { BodyPool } from './body-pool.js';
import { Op, OpenedFlag, PrincipalKind } from './constants.js';
import type { ProtocolLimits } from './constants.js';
import {
  decodeIdQuery,
  decodeOpenAccount,
  encodeAccountView,
  encodeErrorReason,
  encodeFrameHeader,
  encodeHandshakeRefusal,
  encodeHandshakeReply,
  encodeResults,
  encodeTransferView,
} from './frame.js';
import type { FrameHeader } from './frame.js';
import { FrameParser } from './parser.js';
import type { ParseEvent } from './parser.js';
import type { Transport } from './transport.js';

export type ConnectionContext = Readonly<{
  ledger: Ledger;
  authenticate: Authenticate;
  limits: ProtocolLimits;
  pool: BodyPool;
}>;

type Reply = Readonly<{ status: number; count: number; body?: Buffer }>;
type ConnectionState = 'handshake' | 'open' | 'closing' | 'failing' | 'closed';

const WIRE_FORBIDDEN = ERRORS.forbidden.wire;
const WIRE_INVALID_REQUEST = ERRORS.invalid_request.wire;

export class ServerConnection {
  private readonly transport: Transport;
  private readonly context: ConnectionContext;
  private readonly parser: FrameParser;
  private readonly onClosed: (connection: ServerConnection) => void;
  private state: ConnectionState = 'handshake';
  private principal: Principal | undefined;
  /** Chunks received but not yet parsed, kept (as copies: the transport lends its chunks) while reading is held back. */
  private readonly chunks: Buffer[] = [];
  private chunkOffset = 0;
  private inFlight = 0;
  private writeBlocked = false;
  private paused = false;
  private waitingForRoom = false;
  private failure: Readonly<{ requestId: number; reason: string }> | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;

  constructor(transport: Transport, context: ConnectionContext, onClosed: (connection: ServerConnection) => void) {
    this.transport = transport;
    this.context = context;
    this.onClosed = onClosed;
    this.parser = new FrameParser({
      role: 'server',
      frameBodyBytesMax: context.limits.frameBodyBytesMax,
      allocateBody: (bytes) => context.pool.allocate(bytes),
      releaseBody: (body) => context.pool.release(body),
    });
    this.handshakeTimer = setTimeout(() => this.onHandshakeTimeout(), context.limits.handshakeTimeoutMs);
    transport.setHandlers({
      onData: (chunk) => this.onData(chunk),
      onDrain: () => this.onDrain(),
      onClose: () => this.onTransportClose(),
    });
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** Graceful close: answer what is in the engine, refuse new frames with shutting_down, close. */
  beginClose(): void {
    if (this.state === 'handshake') return this.transport.destroy();
    if (this.state !== 'open') return;
    this.state = 'closing';
    this.closeIfIdle();
  }

  destroy(): void {
    this.transport.destroy();
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  private onData(chunk: Buffer): void {
    if (this.state === 'closed' || this.state === 'failing') return;
    this.chunks.push(chunk);
    this.pump();
    this.keepCopyOf(chunk);
  }

  /** The transport lends a chunk for its onData call only: what is held back of it is copied. */
  private keepCopyOf(chunk: Buffer): void {
    const index = this.chunks.lastIndexOf(chunk);
    if (index < 0) return;
    const unread = index === 0 ? chunk.subarray(this.chunkOffset) : chunk;
    this.chunks[index] = Buffer.from(unread);
    if (index === 0) this.chunkOffset = 0;
  }

  private onDrain(): void {
    this.writeBlocked = false;
    this.pump();
  }

  private canRead(): boolean {
    if (this.state !== 'handshake' && this.state !== 'open' && this.state !== 'closing') return false;
    return this.inFlight < this.context.limits.inFlightRequestsMax && !this.writeBlocked && this.context.pool.hasRoom();
  }

  /** Parses and dispatches frames until the chunks run out or a limit holds reading back. */
  private pump(): void {
    while (this.chunks.length > 0 && this.canRead()) {
      const chunk = this.chunks[0] as Buffer;
      this.chunkOffset = this.parser.consume(chunk, this.chunkOffset);
      if (this.chunkOffset === chunk.length) {
        this.chunks.shift();
        this.chunkOffset = 0;
      }
      const event = this.parser.take();
      if (event !== undefined) this.onEvent(event);
    }
    this.updateFlow();
  }

  private updateFlow(): void {
    const holdBack = this.chunks.length > 0 || !this.canRead();
    if (holdBack && !this.context.pool.hasRoom() && !this.waitingForRoom && this.state !== 'closed') {
      this.waitingForRoom = true;
      this.context.pool.onRoom(() => {
        this.waitingForRoom = false;
        this.pump();
      });
    }
    if (holdBack !== this.paused) {
      this.paused = holdBack;
      if (holdBack) this.transport.pause();
      else this.transport.resume();
    }
  }

  private onEvent(event: ParseEvent): void {
    switch (event.kind) {
      case 'handshake':
        return this.onHandshake(event.token);
      case 'frame':
        return this.onFrame(event.header, event.body);
      case 'error':
        return this.fail(event.requestId, event.reason);
      case 'handshake_reply':
        assert(false, 'a server parser never yields a handshake reply');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Handshake

  private onHandshake(token: string): void {
    assert(this.state === 'handshake');
    this.clearHandshakeTimer();
    const principal = this.context.authenticate(token);
    if (principal === undefined) return this.rejectHandshake(ERRORS.unauthorized.wire);
    this.principal = principal;
    this.state = 'open';
    const limits = this.context.limits;
    this.write(
      encodeHandshakeReply({
        status: 0,
        principalKind: principal.kind === 'admin' ? PrincipalKind.admin : PrincipalKind.owner,
        frameBodyBytesMax: limits.frameBodyBytesMax,
        inFlightRequestsMax: limits.inFlightRequestsMax,
        batchRecordsMax: Math.min(BATCH_RECORDS_MAX, Math.floor(limits.frameBodyBytesMax / RECORD_BYTES)),
      }),
    );
  }

  private rejectHandshake(status: number): void {
    this.state = 'failing';
    this.chunks.length = 0;
    this.write(encodeHandshakeRefusal(status));
    this.transport.end();
  }

  private onHandshakeTimeout(): void {
    this.handshakeTimer = undefined;
    if (this.state === 'handshake') this.rejectHandshake(ERRORS.request_timeout.wire);
  }

  private clearHandshakeTimer(): void {
    if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  private onFrame(header: FrameHeader, body: Buffer): void {
    assert(this.state === 'open' || this.state === 'closing');
    if (this.state === 'closing') {
      this.context.pool.release(body);
      this.reply(header, { status: ERRORS.shutting_down.wire, count: 0 });
      return;
    }
    this.inFlight += 1;
    this.handle(header, body).then(
      (reply) => this.onHandled(header, reply),
      (error: unknown) => this.onHandled(header, replyForError(error)),
    );
  }

  private handle(header: FrameHeader, body: Buffer): Promise<Reply> {
    switch (header.op) {
      case Op.submit_transfers:
        return this.submitTransfers(body, header.count);
      case Op.open_account:
        return this.withBody(body, () => this.openAccount(body));
      case Op.get_account:
        return this.withBody(body, () => this.getAccount(body));
      case Op.get_transfer:
        return this.withBody(body, () => this.getTransfer(body));
      default:
        // The parser admits only the ops above.
        throw new AssertionError(`op ${header.op} passed the parser`);
    }
  }

  private onHandled(header: FrameHeader, reply: Reply): void {
    assert(this.inFlight > 0);
    this.inFlight -= 1;
    this.reply(header, reply);
    if (this.state === 'failing' && this.inFlight === 0) this.sendFailure();
    else if (this.state === 'closing') this.closeIfIdle();
    else this.pump();
  }

  private reply(header: FrameHeader, reply: Reply): void {
    this.write(encodeFrameHeader(header.requestId, header.op, reply.status, reply.count, reply.body), reply.body);
  }

  private async withBody(body: Buffer, handler: () => Promise<Reply>): Promise<Reply> {
    try {
      return await handler();
    } finally {
      this.context.pool.release(body);
    }
  }

  private async submitTransfers(body: Buffer, count: number): Promise<Reply> {
    assert(body.length === count * RECORD_BYTES);
    const principal = this.authenticated();
    try {
      // The admin fast path hands the frame's bytes to the engine untouched.
      const results =
        principal.kind === 'admin'
          ? await this.context.ledger.submitTransfers({ bytes: body, count })
          : await this.submitAsOwner(body, count, principal.owner);
      return { status: 0, count, body: encodeResults(results, count) };
    } finally {
      this.context.pool.release(body);
    }
  }

  /** Records an owner may not send are answered forbidden and never reach the engine. */
  private async submitAsOwner(body: Buffer, count: number, owner: string): Promise<TransferResults> {
    const owned = this.context.ledger.accountsOwnedBy(owner);
    const allowed: number[] = [];
    for (let index = 0; index < count; index++) if (mayDebitRecord(owned, body, index * RECORD_BYTES)) allowed.push(index);
    if (allowed.length === count) return this.context.ledger.submitTransfers({ bytes: body, count });
    const codes = new Uint8Array(count).fill(WIRE_FORBIDDEN);
    const sequences = new Float64Array(count);
    if (allowed.length === 0) return { codes, sequences };
    const subset = Buffer.allocUnsafe(allowed.length * RECORD_BYTES);
    allowed.forEach((index, position) => body.copy(subset, position * RECORD_BYTES, index * RECORD_BYTES, (index + 1) * RECORD_BYTES));
    const results = await this.context.ledger.submitTransfers({ bytes: subset, count: allowed.length });
    // The engine answers every record it was given: a missing answer is a bug, not a code to send.
    assert(results.codes.length >= allowed.length && results.sequences.length >= allowed.length, 'the engine answered fewer records than it was given');
    allowed.forEach((index, position) => {
      codes[index] = results.codes[position]!;
      sequences[index] = results.sequences[position]!;
    });
    return { codes, sequences };
  }

  private async openAccount(body: Buffer): Promise<Reply> {
    const request = decodeOpenAccount(body);
    const ownerGiven = request.owner !== '';
    if (!isValidId(request.accountId) || (ownerGiven && !isValidId(request.owner)) || !request.reservedZero) {
      return { status: WIRE_INVALID_REQUEST, count: 0 };
    }
    const currency = currencyByNumeric(request.currencyNumeric);
    if (currency === undefined) return { status: ERRORS.unsupported_currency.wire, count: 0 };
    const owner = ownerGiven ? request.owner : request.accountId;
    if (!mayOpenAccountFor(this.authenticated(), owner)) return { status: WIRE_FORBIDDEN, count: 0 };
    const outcome = await this.context.ledger.openAccount({ accountId: request.accountId, currencyCode: currency.code, owner });
    if (outcome.status === 'rejected') return { status: wireOf(outcome.code), count: 0 };
    const opened = outcome.status === 'created' ? OpenedFlag.created : OpenedFlag.existed;
    return { status: 0, count: 1, body: encodeAccountView(accountViewBody(outcome.account, opened)) };
  }

  private async getAccount(body: Buffer): Promise<Reply> {
    const accountId = decodeIdQuery(body);
    const principal = this.authenticated();
    if (!isValidId(accountId) && !(principal.kind === 'admin' && isExternalId(accountId))) return { status: WIRE_INVALID_REQUEST, count: 0 };
    // Reads show durable state only (forbidden included: it would tell a new account exists).
    const account = await this.context.ledger.durableAccount(accountId);
    if (account === undefined) return { status: ERRORS.account_not_found.wire, count: 0 };
    if (!mayReadAccount(principal, account)) return { status: WIRE_FORBIDDEN, count: 0 };
    return { status: 0, count: 1, body: encodeAccountView(accountViewBody(account, OpenedFlag.none)) };
  }

  private async getTransfer(body: Buffer): Promise<Reply> {
    const transactionId = decodeIdQuery(body);
    if (!isValidId(transactionId)) return { status: WIRE_INVALID_REQUEST, count: 0 };
    const transfer = await this.context.ledger.transfer(transactionId);
    if (transfer === undefined) return { status: ERRORS.transfer_not_found.wire, count: 0 };
    if (!mayReadTransfer(this.authenticated(), this.context.ledger, transfer)) return { status: WIRE_FORBIDDEN, count: 0 };
    return { status: 0, count: 1, body: encodeTransferView(transferViewBody(transfer)) };
  }

  /** Requests arrive only after the handshake, which sets the principal. */
  private authenticated(): Principal {
    const principal = this.principal;
    assert(principal !== undefined);
    return principal;
  }

  // -------------------------------------------------------------------------------------------
  // Writing and closing

  private write(head: Buffer, body?: Buffer): void {
    if (this.state === 'closed') return;
    if (!this.transport.write(head, body)) this.writeBlocked = true;
  }

  /** Stops reading; the error frame follows the answers to requests already in the engine. */
  private fail(requestId: number, reason: string): void {
    if (this.state === 'handshake') return this.rejectHandshake(ERRORS.protocol_error.wire);
    this.state = 'failing';
    this.failure = { requestId, reason };
    this.chunks.length = 0;
    if (this.inFlight === 0) this.sendFailure();
  }

  private sendFailure(): void {
    const failure = this.failure;
    assert(failure !== undefined);
    const reason = encodeErrorReason(failure.reason);
    this.write(encodeFrameHeader(failure.requestId, Op.protocol_error, ERRORS.protocol_error.wire, reason.length, reason), reason);
    this.transport.end();
  }

  private closeIfIdle(): void {
    if (this.inFlight === 0) this.transport.end();
  }

  private onTransportClose(): void {
    this.state = 'closed';
    this.clearHandshakeTimer();
    this.chunks.length = 0;
    this.parser.dispose();
    this.onClosed(this);
  }
}

function replyForError(error: unknown): Reply {
  // A failed assertion is a bug: let it crash the process rather than answer for it.
  if (error instanceof AssertionError) throw error;
  if (error instanceof WalletError) return { status: wireOf(error.code), count: 0 };
  return { status: ERRORS.internal_error.wire, count: 0 };
}

function accountViewBody(account: AccountView, opened: number): Parameters<typeof encodeAccountView>[0] {
  return {
    accountId: account.accountId,
    owner: account.owner,
    balance: account.balance,
    sequence: account.sequence,
    currencyNumeric: account.currency.numeric,
    opened,
  };
}

/** The view as a record: the external side of a deposit or withdrawal is left all zero. */
function transferViewBody(transfer: TransferView): Parameters<typeof encodeTransferView>[0] {
  const kind: TransferKind = transfer.kind;
  return {
    record: {
      kind,
      transactionId: transfer.transactionId,
      fromAccount: isExternalId(transfer.fromAccount) ? '' : transfer.fromAccount,
      toAccount: isExternalId(transfer.toAccount) ? '' : transfer.toAccount,
      amountMinor: transfer.amount,
      currencyNumeric: transfer.currency.numeric,
    },
    sequence: transfer.sequence,
    atMs: transfer.atMs,
    code: wireOf(transfer.code),
  };
}
