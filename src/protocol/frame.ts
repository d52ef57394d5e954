/**
 * Encoders and decoders for every byte layout of the protocol: handshake, handshake reply,
 * frame header, and each request and response body. Pure functions over Buffers; the parser
 * (parser.ts) decides when bytes are complete, these decide what they mean.
 * Byte tables in docs/PROTOCOL.md.
 */
import { crc32 } from '../stdx/crc32.js';
import { assert } from '../stdx/assert.js';
import { BATCH_RECORDS_MAX, RECORD_BYTES, readId, readTransferRecord, writeId, writeTransferRecord } from '../core/transfer-record.js';
import type { TransferCommand } from '../core/transfer-record.js';
import {
  ACCOUNT_OFFSET_BALANCE,
  ACCOUNT_OFFSET_CURRENCY,
  ACCOUNT_OFFSET_ID,
  ACCOUNT_OFFSET_OPENED,
  ACCOUNT_OFFSET_OWNER,
  ACCOUNT_OFFSET_SEQUENCE,
  ACCOUNT_VIEW_BYTES,
  ERROR_REASON_BYTES_MAX,
  FRAME_HEADER_BYTES,
  HANDSHAKE_HEAD_BYTES,
  HANDSHAKE_REPLY_BYTES,
  HEADER_OFFSET_BODY_BYTES,
  HEADER_OFFSET_CHECKSUM,
  HEADER_OFFSET_COUNT,
  HEADER_OFFSET_OP,
  HEADER_OFFSET_REQUEST_ID,
  HEADER_OFFSET_STATUS,
  ID_QUERY_BYTES,
  MAGIC_U32,
  OPEN_ACCOUNT_BYTES,
  OPEN_OFFSET_ACCOUNT_ID,
  OPEN_OFFSET_CURRENCY,
  OPEN_OFFSET_OWNER,
  OPEN_OFFSET_RESERVED,
  Op,
  PrincipalKind,
  PROTOCOL_VERSION,
  RESULT_BYTES,
  TOKEN_BYTES_MAX,
  TRANSFER_OFFSET_AT_MS,
  TRANSFER_OFFSET_CODE,
  TRANSFER_OFFSET_SEQUENCE,
  TRANSFER_VIEW_BYTES,
} from './constants.js';
import { getU64, setU64 } from '../stdx/u64.js';

const TWO_POW_32 = 0x1_0000_0000;

export type FrameHeader = Readonly<{
  bodyBytes: number;
  checksum: number;
  requestId: number;
  op: number;
  status: number;
  count: number;
}>;

// ---------------------------------------------------------------------------------------------
// Frame header and checksum

/** CRC-32 of header bytes 8..16 (request id, op, status, count) followed by the body. */
export function frameChecksum(head: Uint8Array, body: Uint8Array | undefined): number {
  assert(head.length >= FRAME_HEADER_BYTES);
  const headCrc = crc32(head.subarray(HEADER_OFFSET_REQUEST_ID, FRAME_HEADER_BYTES));
  return body === undefined || body.length === 0 ? headCrc : crc32(body, headCrc);
}

/** Builds a fresh 16-byte header for `body`, checksum included. */
export function encodeFrameHeader(requestId: number, op: number, status: number, count: number, body?: Uint8Array): Buffer {
  assert(requestId >= 0 && requestId < TWO_POW_32, 'request id out of u32 range');
  assert(count >= 0 && count <= 0xffff, 'count out of u16 range');
  const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  head.writeUInt32LE(body?.length ?? 0, HEADER_OFFSET_BODY_BYTES);
  head.writeUInt32LE(requestId, HEADER_OFFSET_REQUEST_ID);
  head[HEADER_OFFSET_OP] = op;
  head[HEADER_OFFSET_STATUS] = status;
  head.writeUInt16LE(count, HEADER_OFFSET_COUNT);
  head.writeUInt32LE(frameChecksum(head, body), HEADER_OFFSET_CHECKSUM);
  return head;
}

export function decodeFrameHeader(head: Uint8Array): FrameHeader {
  assert(head.length >= FRAME_HEADER_BYTES);
  const view = Buffer.from(head.buffer, head.byteOffset, FRAME_HEADER_BYTES);
  return {
    bodyBytes: view.readUInt32LE(HEADER_OFFSET_BODY_BYTES),
    checksum: view.readUInt32LE(HEADER_OFFSET_CHECKSUM),
    requestId: view.readUInt32LE(HEADER_OFFSET_REQUEST_ID),
    op: view[HEADER_OFFSET_OP] ?? 0,
    status: view[HEADER_OFFSET_STATUS] ?? 0,
    count: view.readUInt16LE(HEADER_OFFSET_COUNT),
  };
}

/** Bytes per counted item of a request body; undefined for an op a client may not send. */
export function requestItemBytes(op: number): number | undefined {
  switch (op) {
    case Op.submit_transfers:
      return RECORD_BYTES;
    case Op.open_account:
      return OPEN_ACCOUNT_BYTES;
    case Op.get_account:
    case Op.get_transfer:
      return ID_QUERY_BYTES;
    default:
      return undefined;
  }
}

/** Most items in one request: a batch for transfers, exactly one for everything else. */
export function requestCountMax(op: number): number {
  return op === Op.submit_transfers ? BATCH_RECORDS_MAX : 1;
}

/** Bytes per counted item of a response body; undefined for an op a server never sends. */
export function responseItemBytes(op: number): number | undefined {
  switch (op) {
    case Op.submit_transfers:
      return RESULT_BYTES;
    case Op.open_account:
    case Op.get_account:
      return ACCOUNT_VIEW_BYTES;
    case Op.get_transfer:
      return TRANSFER_VIEW_BYTES;
    case Op.protocol_error:
      return 1;
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Handshake

export type HandshakeHead = Readonly<{ magic: number; version: number; tokenBytes: number }>;
export type HandshakeReply = Readonly<{
  magic: number;
  version: number;
  /** Wire code: 0 accepted; unauthorized, protocol_error, overloaded or shutting_down otherwise. */
  status: number;
  principalKind: number;
  frameBodyBytesMax: number;
  inFlightRequestsMax: number;
  batchRecordsMax: number;
}>;

export function encodeHandshake(token: string, version: number = PROTOCOL_VERSION): Buffer {
  const tokenBytes = Buffer.byteLength(token, 'utf8');
  assert(tokenBytes >= 1 && tokenBytes <= TOKEN_BYTES_MAX, 'token length out of range');
  const bytes = Buffer.allocUnsafe(HANDSHAKE_HEAD_BYTES + tokenBytes);
  bytes.writeUInt32LE(MAGIC_U32, 0);
  bytes.writeUInt16LE(version, 4);
  bytes.writeUInt16LE(tokenBytes, 6);
  bytes.write(token, HANDSHAKE_HEAD_BYTES, 'utf8');
  return bytes;
}

export function decodeHandshakeHead(bytes: Uint8Array): HandshakeHead {
  assert(bytes.length >= HANDSHAKE_HEAD_BYTES);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, HANDSHAKE_HEAD_BYTES);
  return { magic: view.readUInt32LE(0), version: view.readUInt16LE(4), tokenBytes: view.readUInt16LE(6) };
}

export function encodeHandshakeReply(reply: Omit<HandshakeReply, 'magic' | 'version'>): Buffer {
  assert(reply.status >= 0 && reply.status <= 0xff);
  assert(reply.batchRecordsMax <= BATCH_RECORDS_MAX);
  const bytes = Buffer.allocUnsafe(HANDSHAKE_REPLY_BYTES);
  bytes.writeUInt32LE(MAGIC_U32, 0);
  bytes.writeUInt16LE(PROTOCOL_VERSION, 4);
  bytes[6] = reply.status;
  bytes[7] = reply.principalKind;
  bytes.writeUInt32LE(reply.frameBodyBytesMax, 8);
  bytes.writeUInt16LE(reply.inFlightRequestsMax, 12);
  bytes.writeUInt16LE(reply.batchRecordsMax, 14);
  return bytes;
}

/** The reply that refuses a handshake with wire code `status`: no principal, no limits. */
export function encodeHandshakeRefusal(status: number): Buffer {
  assert(status !== 0, 'a refusal needs a non-zero status');
  return encodeHandshakeReply({ status, principalKind: PrincipalKind.none, frameBodyBytesMax: 0, inFlightRequestsMax: 0, batchRecordsMax: 0 });
}

export function decodeHandshakeReply(bytes: Uint8Array): HandshakeReply {
  assert(bytes.length >= HANDSHAKE_REPLY_BYTES);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, HANDSHAKE_REPLY_BYTES);
  return {
    magic: view.readUInt32LE(0),
    version: view.readUInt16LE(4),
    status: view[6] ?? 0,
    principalKind: view[7] ?? 0,
    frameBodyBytesMax: view.readUInt32LE(8),
    inFlightRequestsMax: view.readUInt16LE(12),
    batchRecordsMax: view.readUInt16LE(14),
  };
}

// ---------------------------------------------------------------------------------------------
// Request bodies

export type OpenAccountBody = Readonly<{
  accountId: string;
  /** '' means "the same as the account id", as in the HTTP API. */
  owner: string;
  currencyNumeric: number;
  reservedZero: boolean;
}>;

export function encodeOpenAccount(body: Omit<OpenAccountBody, 'reservedZero'>): Buffer {
  const bytes = Buffer.alloc(OPEN_ACCOUNT_BYTES);
  writeId(bytes, OPEN_OFFSET_ACCOUNT_ID, body.accountId);
  writeId(bytes, OPEN_OFFSET_OWNER, body.owner);
  bytes.writeUInt16LE(body.currencyNumeric, OPEN_OFFSET_CURRENCY);
  return bytes;
}

export function decodeOpenAccount(bytes: Uint8Array): OpenAccountBody {
  assert(bytes.length === OPEN_ACCOUNT_BYTES);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, OPEN_ACCOUNT_BYTES);
  return {
    accountId: readId(view, OPEN_OFFSET_ACCOUNT_ID),
    owner: readId(view, OPEN_OFFSET_OWNER),
    currencyNumeric: view.readUInt16LE(OPEN_OFFSET_CURRENCY),
    reservedZero: isZero(view, OPEN_OFFSET_RESERVED, OPEN_ACCOUNT_BYTES),
  };
}

/** The body of get_account and get_transfer: one NUL-padded id. */
export function encodeIdQuery(id: string): Buffer {
  const bytes = Buffer.alloc(ID_QUERY_BYTES);
  writeId(bytes, 0, id);
  return bytes;
}

export function decodeIdQuery(bytes: Uint8Array): string {
  assert(bytes.length === ID_QUERY_BYTES);
  return readId(bytes, 0);
}

// ---------------------------------------------------------------------------------------------
// Response bodies

export type ResultColumns = Readonly<{ codes: Uint8Array; sequences: Float64Array }>;

/** `count` results as a code column (u8 each) followed by a sequence column (u64 LE each). */
export function encodeResults(results: ResultColumns, count: number): Buffer {
  assert(results.codes.length >= count);
  assert(results.sequences.length >= count);
  const bytes = Buffer.allocUnsafe(count * RESULT_BYTES);
  bytes.set(results.codes.subarray(0, count), 0);
  // Up to 8,190 sequences a frame: two 32-bit stores each through one DataView, no per-record
  // call into Buffer's checked writers. Engine sequences are safe integers (below 2^48).
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const sequences = results.sequences;
  for (let index = 0; index < count; index++) setU64(view, count + index * 8, sequences[index]!);
  return bytes;
}

export function decodeResults(bytes: Uint8Array, count: number): ResultColumns {
  assert(bytes.length === count * RESULT_BYTES, 'results body length does not match count');
  const codes = new Uint8Array(count);
  codes.set(bytes.subarray(0, count));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const sequences = new Float64Array(count);
  for (let index = 0; index < count; index++) sequences[index] = getU64(view, count + index * 8);
  return { codes, sequences };
}

export type AccountViewBody = Readonly<{
  accountId: string;
  owner: string;
  balance: bigint;
  sequence: number;
  currencyNumeric: number;
  /** OpenedFlag: none for a lookup, created or existed for open_account. */
  opened: number;
}>;

export function encodeAccountView(account: AccountViewBody): Buffer {
  const bytes = Buffer.alloc(ACCOUNT_VIEW_BYTES);
  writeId(bytes, ACCOUNT_OFFSET_ID, account.accountId);
  writeId(bytes, ACCOUNT_OFFSET_OWNER, account.owner);
  bytes.writeBigInt64LE(account.balance, ACCOUNT_OFFSET_BALANCE);
  writeU64(bytes, ACCOUNT_OFFSET_SEQUENCE, account.sequence);
  bytes.writeUInt16LE(account.currencyNumeric, ACCOUNT_OFFSET_CURRENCY);
  bytes[ACCOUNT_OFFSET_OPENED] = account.opened;
  return bytes;
}

export function decodeAccountView(bytes: Uint8Array): AccountViewBody {
  assert(bytes.length === ACCOUNT_VIEW_BYTES);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, ACCOUNT_VIEW_BYTES);
  return {
    accountId: readId(view, ACCOUNT_OFFSET_ID),
    owner: readId(view, ACCOUNT_OFFSET_OWNER),
    balance: view.readBigInt64LE(ACCOUNT_OFFSET_BALANCE),
    sequence: readU64(view, ACCOUNT_OFFSET_SEQUENCE),
    currencyNumeric: view.readUInt16LE(ACCOUNT_OFFSET_CURRENCY),
    opened: view[ACCOUNT_OFFSET_OPENED] ?? 0,
  };
}

export type TransferViewBody = Readonly<{
  /** The transfer as a record: the external side of a deposit or withdrawal is all zero. */
  record: TransferCommand;
  sequence: number;
  atMs: number;
  /** Wire code of the outcome: 0 success, else the logged rejection. */
  code: number;
}>;

export function encodeTransferView(transfer: TransferViewBody): Buffer {
  const bytes = Buffer.alloc(TRANSFER_VIEW_BYTES);
  writeTransferRecord(bytes, 0, transfer.record);
  writeU64(bytes, TRANSFER_OFFSET_SEQUENCE, transfer.sequence);
  writeU64(bytes, TRANSFER_OFFSET_AT_MS, transfer.atMs);
  bytes[TRANSFER_OFFSET_CODE] = transfer.code;
  return bytes;
}

export function decodeTransferView(bytes: Uint8Array): TransferViewBody {
  assert(bytes.length === TRANSFER_VIEW_BYTES);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, TRANSFER_VIEW_BYTES);
  return {
    record: readTransferRecord(view, 0),
    sequence: readU64(view, TRANSFER_OFFSET_SEQUENCE),
    atMs: readU64(view, TRANSFER_OFFSET_AT_MS),
    code: view[TRANSFER_OFFSET_CODE] ?? 0,
  };
}

/** The body of a protocol_error frame: a short printable ASCII reason. */
export function encodeErrorReason(reason: string): Buffer {
  const printable = reason.replace(/[^\x20-\x7e]/g, '?').slice(0, ERROR_REASON_BYTES_MAX);
  return Buffer.from(printable, 'latin1');
}

export function decodeErrorReason(bytes: Uint8Array): string {
  assert(bytes.length <= ERROR_REASON_BYTES_MAX);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

// ---------------------------------------------------------------------------------------------
// Field helpers

/** u64 LE from a JS number, checked: views carry sequences and times, always safe integers. */
function writeU64(bytes: Buffer, offset: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'u64 field must be a safe non-negative integer');
  setU64(new DataView(bytes.buffer, bytes.byteOffset, bytes.length), offset, value);
}

/** Values above 2^53 lose precision; the server never sends them (see writeU64). */
function readU64(bytes: Buffer, offset: number): number {
  return getU64(new DataView(bytes.buffer, bytes.byteOffset, bytes.length), offset);
}

function isZero(bytes: Uint8Array, start: number, end: number): boolean {
  for (let index = start; index < end; index++) if (bytes[index] !== 0) return false;
  return true;
}
