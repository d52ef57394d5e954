/**
 * The walletd client: typed calls over the binary protocol, with automatic batching,
 * pipelining and reconnection.
 *
 * Batching: every transfer(), deposit() and withdraw() writes its record straight into the
 * open batch buffer. The batch is sealed into a frame when it is full, or when a frame slot is
 * free at the next turn of the event loop. While every slot is busy the batch keeps growing,
 * so the busier the client, the bigger its frames (as TigerBeetle's client does).
 *
 * Retries: a request stays in memory, frame bytes and request id included, until its answer
 * arrives. When the connection drops, every unanswered request is sent again, in the original
 * order, on the next connection. Transfers carry their transaction ids and account opening is
 * idempotent, so a request that reached the ledger before the drop is answered with its first
 * outcome and never applied twice.
 */
import { assert } from '../stdx/assert.js';
import { codeOfWire, ERRORS, WalletError, wireOf } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { currencyByCode } from '../core/currency.js';
import { isExternalId, isValidId } from '../core/ids.js';
import { BATCH_RECORDS_MAX, RECORD_BYTES, writeTransferRecord } from '../core/transfer-record.js';
import type { TransferCommand } from '../core/transfer-record.js';
import { Op, PrincipalKind } from '../protocol/constants.js';
import {
  decodeAccountView,
  decodeResults,
  decodeTransferView,
  encodeFrameHeader,
  encodeIdQuery,
  encodeOpenAccount,
} from '../protocol/frame.js';
import type { FrameHeader, ResultColumns } from '../protocol/frame.js';
import { connectTcp } from '../protocol/transport-tcp.js';
import type { Transport } from '../protocol/transport.js';
import { movementCommand, transferCommand } from './commands.js';
import type { MovementArgs, TransferArgs } from './commands.js';
import { ClientConnection } from './connection.js';
import { accountInfo, transferInfo, wasCreated } from './views.js';
import type { AccountInfo, TransferInfo } from './views.js';

export type ConnectOptions = Readonly<{
  host?: string;
  port: number;
  token: string;
  /** Frames sent and not yet answered; the server's own limit caps it. Default 8. */
  framesInFlightMax?: number;
  /**
   * Calls waiting to be sent, counted in records (a lookup or an account opening counts as one);
   * a call beyond it is answered `overloaded`. Default 64 full frames.
   */
  queuedRecordsMax?: number;
  /** Time to connect and complete the handshake. Default 5 s. */
  connectTimeoutMs?: number;
  /** After a drop, how long to keep reconnecting before failing queued calls. Default 30 s. */
  reconnectTimeMsMax?: number;
  /** Opens the byte pipe. Default: TCP to host:port. Tests pass an in-memory transport. */
  dial?: () => Promise<Transport>;
}>;

export type Failure = Readonly<{ ok: false; code: ErrorCode }>;
/**
 * `sequence` is the log position of the recorded outcome; a logged rejection has one too,
 * a call stopped before the ledger has 0. `request_timeout` means the outcome is unknown (the
 * connection could not be restored): call again with the same transaction id, or look it up.
 */
export type TransferResult = Readonly<{ ok: true; sequence: number }> | Readonly<{ ok: false; code: ErrorCode; sequence: number }>;
export type AccountResult = Readonly<{ ok: true; account: AccountInfo }> | Failure;
export type OpenAccountResult = Readonly<{ ok: true; created: boolean; account: AccountInfo }> | Failure;
export type TransferStatusResult = Readonly<{ ok: true; transfer: TransferInfo }> | Failure;
export type OpenAccountArgs = Readonly<{ accountId: string; currency: string; owner?: string }>;

type Request = {
  readonly id: number;
  readonly op: number;
  readonly count: number;
  readonly head: Buffer;
  readonly body: Buffer;
  /** Receives the answer, or (status, 0, empty) when there will be none. */
  readonly settle: (status: number, count: number, body: Buffer) => void;
};

type ClientState = 'open' | 'reconnecting' | 'idle' | 'closing' | 'closed';

const DEFAULTS = {
  host: '127.0.0.1',
  framesInFlightMax: 8,
  queuedRecordsMax: 64 * BATCH_RECORDS_MAX,
  connectTimeoutMs: 5_000,
  reconnectTimeMsMax: 30_000,
} as const;
const RECONNECT_DELAY_MS_MIN = 10;
const RECONNECT_DELAY_MS_MAX = 1_000;
const BATCH_BUFFERS_FREE_MAX = 16;
const WIRE_SHUTTING_DOWN = ERRORS.shutting_down.wire;
const EMPTY = Buffer.alloc(0);

/** Longest timer Node keeps (2^31 − 1 ms); beyond it setTimeout fires at once. */
const TIMER_MS_MAX = 2 ** 31 - 1;

/** Counts are whole numbers ≥ 1, times whole milliseconds from 1 to TIMER_MS_MAX: no NaN, no forever. */
function checkConnectOptions(options: ConnectOptions): void {
  for (const name of ['framesInFlightMax', 'queuedRecordsMax'] as const) {
    const value = options[name];
    assert(value === undefined || (Number.isSafeInteger(value) && value >= 1), `${name} must be a whole number ≥ 1`);
  }
  for (const name of ['connectTimeoutMs', 'reconnectTimeMsMax'] as const) {
    const value = options[name];
    assert(value === undefined || (Number.isSafeInteger(value) && value >= 1 && value <= TIMER_MS_MAX), `${name} must be 1 to ${TIMER_MS_MAX} ms`);
  }
}

export class WalletClient {
  private readonly options: Required<Omit<ConnectOptions, 'host' | 'port' | 'token' | 'dial'>>;
  private readonly dial: () => Promise<Transport>;
  private readonly token: string;
  private connection: ClientConnection | undefined;
  private state: ClientState = 'open';
  /** Set when the server said shutting_down: send nothing more on this connection. */
  private draining = false;
  private writeBlocked = false;
  private framesInFlightMax: number;
  private batchRecordsMax: number;
  private principalKind: number;
  private readonly waiting: Request[] = [];
  private readonly inFlight = new Map<number, Request>();
  private recordsQueued = 0;
  private requestIdNext = 1;
  private flushScheduled = false;
  private reconnecting = false;
  private batchRecords: Buffer;
  private batchResolvers: Array<(result: TransferResult) => void> = [];
  private readonly batchBuffersFree: Buffer[] = [];
  private closeWaiters: Array<() => void> = [];

  /** Connects and authenticates; rejects with a WalletError (`unauthorized`, ...) on failure. */
  static async connect(options: ConnectOptions): Promise<WalletClient> {
    checkConnectOptions(options);
    const host = options.host ?? DEFAULTS.host;
    const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    const dial = options.dial ?? (() => connectTcp(host, options.port, connectTimeoutMs));
    const connection = await ClientConnection.open(await dial(), options.token, connectTimeoutMs);
    return new WalletClient(options, dial, connection);
  }

  private constructor(options: ConnectOptions, dial: () => Promise<Transport>, connection: ClientConnection) {
    this.options = {
      framesInFlightMax: options.framesInFlightMax ?? DEFAULTS.framesInFlightMax,
      queuedRecordsMax: options.queuedRecordsMax ?? DEFAULTS.queuedRecordsMax,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      reconnectTimeMsMax: options.reconnectTimeMsMax ?? DEFAULTS.reconnectTimeMsMax,
    };
    this.dial = dial;
    this.token = options.token;
    this.framesInFlightMax = this.options.framesInFlightMax;
    this.batchRecordsMax = BATCH_RECORDS_MAX;
    this.principalKind = PrincipalKind.none;
    this.batchRecords = this.takeBatchBuffer();
    this.adopt(connection);
  }

  /** 'admin' or 'owner', as the server authenticated the token. */
  get principal(): 'admin' | 'owner' {
    return this.principalKind === PrincipalKind.admin ? 'admin' : 'owner';
  }

  /** Largest batch the server takes in one frame (8,190 unless it runs with a lower limit). */
  get batchSizeMax(): number {
    return this.batchRecordsMax;
  }

  // -------------------------------------------------------------------------------------------
  // Public calls

  transfer(args: TransferArgs): Promise<TransferResult> {
    return this.addRecord(transferCommand(args));
  }

  /** Admin only: money enters the ledger from the currency's external account. */
  deposit(args: MovementArgs): Promise<TransferResult> {
    return this.addRecord(movementCommand('deposit', args));
  }

  /** Admin only: money leaves the ledger to the currency's external account. */
  withdraw(args: MovementArgs): Promise<TransferResult> {
    return this.addRecord(movementCommand('withdrawal', args));
  }

  /**
   * Sends `count` prebuilt records (src/core/transfer-record.ts) as one frame, without copying
   * them: `records` must stay unchanged until the promise settles. A refusal of the whole frame
   * (`overloaded`, `shutting_down` after retries, ...) comes back as that code on every record.
   */
  submitBatch(records: Buffer, count: number): Promise<ResultColumns> {
    assert(count >= 1 && count <= this.batchRecordsMax, 'batch count out of range');
    assert(records.length >= count * RECORD_BYTES, 'records buffer shorter than count records');
    const refusal = this.refusalFor(count);
    if (refusal !== undefined) return Promise.resolve(refusedColumns(wireOf(refusal), count));
    return new Promise((resolve) => {
      const body = records.subarray(0, count * RECORD_BYTES);
      this.enqueue(Op.submit_transfers, count, body, (status, answered, bytes) => {
        resolve(answeredColumns(status, answered, bytes, count));
      });
    });
  }

  openAccount(args: OpenAccountArgs): Promise<OpenAccountResult> {
    const currency = currencyByCode(args.currency);
    const owner = args.owner ?? '';
    if (!isValidId(args.accountId) || (owner !== '' && !isValidId(owner))) return Promise.resolve(failure('invalid_request'));
    if (currency === undefined) return Promise.resolve(failure('unsupported_currency'));
    const body = encodeOpenAccount({ accountId: args.accountId, owner, currencyNumeric: currency.numeric });
    return this.lookup(Op.open_account, body, (bytes) => {
      const view = decodeAccountView(bytes);
      const account = accountInfo(view);
      return account === undefined ? failure('protocol_error') : { ok: true, created: wasCreated(view), account };
    });
  }

  account(accountId: string): Promise<AccountResult> {
    if (!isValidId(accountId) && !isExternalId(accountId)) return Promise.resolve(failure('invalid_request'));
    return this.lookup(Op.get_account, encodeIdQuery(accountId), (bytes) => {
      const account = accountInfo(decodeAccountView(bytes));
      return account === undefined ? failure('protocol_error') : { ok: true, account };
    });
  }

  /** The recorded outcome of a transfer, deposit or withdrawal; `transfer_not_found` if none. */
  transferStatus(transactionId: string): Promise<TransferStatusResult> {
    if (!isValidId(transactionId)) return Promise.resolve(failure('invalid_request'));
    return this.lookup(Op.get_transfer, encodeIdQuery(transactionId), (bytes) => {
      const transfer = transferInfo(decodeTransferView(bytes));
      return transfer === undefined ? failure('protocol_error') : { ok: true, transfer };
    });
  }

  /** Sends what is batched, waits for every answer, then closes. Later calls get shutting_down. */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    if (this.state !== 'closing') {
      this.state = 'closing';
      this.pump();
    }
    return new Promise((resolve) => {
      this.closeWaiters.push(resolve);
      this.finishCloseIfDone();
    });
  }

  // -------------------------------------------------------------------------------------------
  // Batching

  private addRecord(command: TransferCommand | ErrorCode): Promise<TransferResult> {
    if (typeof command === 'string') return Promise.resolve({ ok: false, code: command, sequence: 0 });
    const refusal = this.refusalFor(1);
    if (refusal !== undefined) return Promise.resolve({ ok: false, code: refusal, sequence: 0 });
    return new Promise((resolve) => {
      writeTransferRecord(this.batchRecords, this.batchResolvers.length, command);
      this.batchResolvers.push(resolve);
      if (this.batchResolvers.length >= this.batchRecordsMax) this.sealBatch();
      if (this.state === 'idle') this.startReconnect();
      this.scheduleFlush();
    });
  }

  private refusalFor(records: number): ErrorCode | undefined {
    if (this.state === 'closing' || this.state === 'closed') return 'shutting_down';
    if (this.recordsQueued + this.batchResolvers.length + records > this.options.queuedRecordsMax) return 'overloaded';
    return undefined;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.pump();
    });
  }

  /** Turns the open batch into a request at the back of the queue. */
  private sealBatch(): void {
    const count = this.batchResolvers.length;
    assert(count > 0 && count <= this.batchRecordsMax);
    const records = this.batchRecords;
    const resolvers = this.batchResolvers;
    this.batchRecords = this.takeBatchBuffer();
    this.batchResolvers = [];
    this.enqueue(Op.submit_transfers, count, records.subarray(0, count * RECORD_BYTES), (status, answered, bytes) => {
      const results = answeredColumns(status, answered, bytes, count);
      this.returnBatchBuffer(records);
      for (let index = 0; index < count; index++) (resolvers[index] as (result: TransferResult) => void)(transferResult(results, index));
    });
  }

  private takeBatchBuffer(): Buffer {
    return this.batchBuffersFree.pop() ?? Buffer.allocUnsafe(BATCH_RECORDS_MAX * RECORD_BYTES);
  }

  private returnBatchBuffer(buffer: Buffer): void {
    if (this.batchBuffersFree.length < BATCH_BUFFERS_FREE_MAX) this.batchBuffersFree.push(buffer);
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  /** A one-item request; it holds one place of queuedRecordsMax while it waits to be sent. */
  private lookup<T>(op: number, body: Buffer, decode: (bytes: Buffer) => T | Failure): Promise<T | Failure> {
    const refusal = this.refusalFor(1);
    if (refusal !== undefined) return Promise.resolve(failure(refusal));
    return new Promise((resolve) => {
      this.enqueue(op, 1, body, (status, count, bytes) => {
        if (status !== 0) resolve(failure(codeOfWire(status) ?? 'internal_error'));
        else resolve(count === 1 ? decode(bytes) : failure('protocol_error'));
      });
    });
  }

  /** Queues a request; it holds `count` places of queuedRecordsMax (its records, or 1 for a lookup) until sent. */
  private enqueue(op: number, count: number, body: Buffer, settle: Request['settle']): void {
    const id = this.requestIdNext;
    this.requestIdNext = id === 0xffff_ffff ? 1 : id + 1;
    const head = encodeFrameHeader(id, op, 0, count, body);
    this.waiting.push({ id, op, count, head, body, settle });
    this.recordsQueued += count;
    if (this.state === 'idle') this.startReconnect();
    this.scheduleFlush();
  }

  /** Sends queued requests (sealing the open batch last) while frame slots are free. */
  private pump(): void {
    const connection = this.connection;
    if (connection !== undefined && !this.draining) {
      while (!this.writeBlocked && this.inFlight.size < this.framesInFlightMax) {
        if (this.waiting.length === 0 && this.batchResolvers.length > 0) this.sealBatch();
        const request = this.waiting.shift();
        if (request === undefined) break;
        this.recordsQueued -= request.count;
        this.inFlight.set(request.id, request);
        if (!connection.send(request.head, request.body)) this.writeBlocked = true;
      }
    }
    this.finishCloseIfDone();
  }

  private onResponse(header: FrameHeader, body: Buffer): void {
    const request = this.inFlight.get(header.requestId);
    if (request === undefined || request.op !== header.op) {
      // Not an answer to anything we sent: the stream cannot be trusted. Retry on a new one.
      this.connection?.destroy();
      return;
    }
    if (header.status === WIRE_SHUTTING_DOWN) {
      // Not applied. It stays in flight and is sent again once this connection has closed.
      this.draining = true;
      return;
    }
    this.inFlight.delete(header.requestId);
    request.settle(header.status, header.count, body);
    this.pump();
  }

  private onProtocolError(requestId: number): void {
    // The server found this frame malformed: sending it again would fail the same way.
    const request = this.inFlight.get(requestId);
    if (request === undefined) return;
    this.inFlight.delete(requestId);
    request.settle(ERRORS.protocol_error.wire, 0, EMPTY);
  }

  // -------------------------------------------------------------------------------------------
  // Connection life

  private adopt(connection: ClientConnection): void {
    const reply = connection.reply;
    this.connection = connection;
    this.draining = false;
    this.writeBlocked = false;
    this.framesInFlightMax = Math.min(this.options.framesInFlightMax, reply.inFlightRequestsMax);
    this.batchRecordsMax = Math.min(BATCH_RECORDS_MAX, reply.batchRecordsMax);
    this.principalKind = reply.principalKind;
    connection.attach({
      onResponse: (header, body) => this.onResponse(header, body),
      onProtocolError: (requestId) => this.onProtocolError(requestId),
      onDrain: () => {
        this.writeBlocked = false;
        this.pump();
      },
      onClose: () => this.onConnectionClose(connection),
    });
    this.pump();
  }

  private onConnectionClose(connection: ClientConnection): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    // Unanswered requests go back to the front of the queue, in the order they were sent.
    const unanswered = [...this.inFlight.values()];
    this.inFlight.clear();
    this.waiting.unshift(...unanswered);
    for (const request of unanswered) this.recordsQueued += request.count;
    if (this.state === 'closed') return;
    if (this.hasWork()) this.startReconnect();
    else if (this.state === 'open') this.state = 'idle';
    this.finishCloseIfDone();
  }

  private hasWork(): boolean {
    return this.waiting.length > 0 || this.inFlight.size > 0 || this.batchResolvers.length > 0;
  }

  private startReconnect(): void {
    if (this.reconnecting) return;
    if (this.state === 'open' || this.state === 'idle') this.state = 'reconnecting';
    this.reconnecting = true;
    void this.reconnect().finally(() => {
      this.reconnecting = false;
    });
  }

  private async reconnect(): Promise<void> {
    const deadlineMs = Date.now() + this.options.reconnectTimeMsMax;
    let delayMs = RECONNECT_DELAY_MS_MIN;
    for (;;) {
      const outcome = await this.tryConnect();
      if (this.state === 'closed') {
        if (outcome instanceof ClientConnection) outcome.destroy();
        return;
      }
      if (outcome instanceof ClientConnection) {
        if (this.state === 'reconnecting') this.state = 'open';
        return this.adopt(outcome);
      }
      // A refused token or a foreign server will not get better by waiting.
      const final = outcome === 'unauthorized' || outcome === 'protocol_error';
      if (final || Date.now() + delayMs > deadlineMs) return this.giveUp(final ? outcome : 'request_timeout');
      await sleep(delayMs);
      delayMs = Math.min(delayMs * 2, RECONNECT_DELAY_MS_MAX);
    }
  }

  private async tryConnect(): Promise<ClientConnection | ErrorCode> {
    try {
      return await ClientConnection.open(await this.dial(), this.token, this.options.connectTimeoutMs);
    } catch (error) {
      return error instanceof WalletError ? error.code : 'request_timeout';
    }
  }

  /** No connection in time: every queued call fails with `code`; the next call tries again. */
  private giveUp(code: ErrorCode): void {
    if (this.batchResolvers.length > 0) this.sealBatch();
    const failed = this.waiting.splice(0);
    this.recordsQueued = 0;
    if (this.state === 'reconnecting') this.state = 'idle';
    for (const request of failed) request.settle(wireOf(code), 0, EMPTY);
    if (this.state === 'closing') this.state = 'closed';
    this.finishCloseIfDone();
  }

  private finishCloseIfDone(): void {
    if (this.state !== 'closing' && this.state !== 'closed') return;
    if (this.hasWork() && this.state === 'closing') return;
    this.state = 'closed';
    this.connection?.end();
    for (const waiter of this.closeWaiters.splice(0)) waiter();
  }
}

function failure(code: ErrorCode): Failure {
  return { ok: false, code };
}

function transferResult(results: ResultColumns, index: number): TransferResult {
  const wire = results.codes[index] ?? ERRORS.internal_error.wire;
  const sequence = results.sequences[index] ?? 0;
  if (wire === 0) return { ok: true, sequence };
  return { ok: false, code: codeOfWire(wire) ?? 'internal_error', sequence };
}

/** The per-record results of a transfer frame; a refused or short answer repeats its code on every record. */
function answeredColumns(status: number, answered: number, bytes: Buffer, count: number): ResultColumns {
  return status === 0 && answered === count ? decodeResults(bytes, count) : refusedColumns(status || ERRORS.internal_error.wire, count);
}

function refusedColumns(status: number, count: number): ResultColumns {
  return { codes: new Uint8Array(count).fill(status), sequences: new Float64Array(count) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
