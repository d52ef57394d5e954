/**
 * Constants of the walletd binary batch protocol, version 1. Byte tables in docs/PROTOCOL.md.
 *
 * Every size here is a wire contract: changing one is a new protocol version. Relations between
 * them are asserted once, at load, so a bad edit fails on the first import rather than on a
 * peer's machine.
 */
import { assert } from '../stdx/assert.js';
import { ID_BYTES_MAX } from '../core/ids.js';
import { BATCH_RECORDS_MAX, RECORD_BYTES } from '../core/transfer-record.js';

/** "WLTD" as bytes 57 4C 54 44; read as a little-endian u32. */
export const MAGIC_U32 = 0x44544c57;
export const PROTOCOL_VERSION = 1;

// Handshake: the client opens with magic, version and token; the server answers with a fixed reply.
export const HANDSHAKE_HEAD_BYTES = 8;
export const HANDSHAKE_REPLY_BYTES = 16;
/** A token longer than this is refused before it is buffered. */
export const TOKEN_BYTES_MAX = 1024;

export const PrincipalKind = { none: 0, admin: 1, owner: 2 } as const;

// Frame header, the same in both directions.
export const FRAME_HEADER_BYTES = 16;
export const HEADER_OFFSET_BODY_BYTES = 0;
export const HEADER_OFFSET_CHECKSUM = 4;
/** The checksum covers the header from here on, then the body. */
export const HEADER_OFFSET_REQUEST_ID = 8;
export const HEADER_OFFSET_OP = 12;
export const HEADER_OFFSET_STATUS = 13;
export const HEADER_OFFSET_COUNT = 14;
/** The count field is a u16; a batch must fit in it. */
export const FRAME_COUNT_MAX = 0xffff;

export const Op = {
  submit_transfers: 1,
  open_account: 2,
  get_account: 3,
  get_transfer: 4,
  /** Server to client only: the connection broke the protocol and is being closed. */
  protocol_error: 255,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

// Request bodies.
export const OPEN_ACCOUNT_BYTES = 136;
export const OPEN_OFFSET_ACCOUNT_ID = 0;
export const OPEN_OFFSET_OWNER = 64;
export const OPEN_OFFSET_CURRENCY = 128;
export const OPEN_OFFSET_RESERVED = 130;
export const ID_QUERY_BYTES = ID_BYTES_MAX;

// Response bodies.
/** One result per record: a u8 code column, then a u64 sequence column. */
export const RESULT_BYTES = 9;
export const ACCOUNT_VIEW_BYTES = 152;
export const ACCOUNT_OFFSET_ID = 0;
export const ACCOUNT_OFFSET_OWNER = 64;
export const ACCOUNT_OFFSET_BALANCE = 128;
export const ACCOUNT_OFFSET_SEQUENCE = 136;
export const ACCOUNT_OFFSET_CURRENCY = 144;
export const ACCOUNT_OFFSET_OPENED = 146;
export const OpenedFlag = { none: 0, created: 1, existed: 2 } as const;
export const TRANSFER_VIEW_BYTES = 232;
export const TRANSFER_OFFSET_SEQUENCE = RECORD_BYTES;
export const TRANSFER_OFFSET_AT_MS = RECORD_BYTES + 8;
export const TRANSFER_OFFSET_CODE = RECORD_BYTES + 16;
/** A protocol error frame carries a short ASCII reason, one count per byte. */
export const ERROR_REASON_BYTES_MAX = 200;

/** The largest body any single-item operation needs; a frame limit below it is unusable. */
export const SINGLE_ITEM_BYTES_MAX = Math.max(OPEN_ACCOUNT_BYTES, ACCOUNT_VIEW_BYTES, TRANSFER_VIEW_BYTES);
/** Default frame body limit: exactly one full batch of transfer records. */
export const FRAME_BODY_BYTES_DEFAULT = BATCH_RECORDS_MAX * RECORD_BYTES;

assert(BATCH_RECORDS_MAX <= FRAME_COUNT_MAX);
assert(RESULT_BYTES * BATCH_RECORDS_MAX <= FRAME_BODY_BYTES_DEFAULT);
assert(SINGLE_ITEM_BYTES_MAX <= FRAME_BODY_BYTES_DEFAULT);
assert(OPEN_OFFSET_RESERVED + 6 === OPEN_ACCOUNT_BYTES);
assert(TRANSFER_OFFSET_CODE + 8 === TRANSFER_VIEW_BYTES);
assert(ACCOUNT_OFFSET_OPENED + 6 === ACCOUNT_VIEW_BYTES);

/** Finite limits of one server; the handshake reply tells the client the ones it must respect. */
export type ProtocolLimits = Readonly<{
  /** Largest frame body accepted (bytes after the 16-byte header). */
  frameBodyBytesMax: number;
  /** Requests read but not yet answered on one connection; reading pauses at this count. */
  inFlightRequestsMax: number;
  /** Request body bytes held by all connections together; reading pauses above it. */
  inFlightBytesMax: number;
  /** Open connections; the next one is answered `overloaded` in its handshake reply. */
  connectionsMax: number;
  /** A connection that has not completed its handshake by then is closed. */
  handshakeTimeoutMs: number;
  /** Graceful close waits this long for in-flight requests before cutting connections. */
  closeTimeoutMs: number;
}>;

export const LIMITS_DEFAULT: ProtocolLimits = Object.freeze({
  frameBodyBytesMax: FRAME_BODY_BYTES_DEFAULT,
  inFlightRequestsMax: 32,
  inFlightBytesMax: 256 * 1024 * 1024,
  connectionsMax: 256,
  handshakeTimeoutMs: 10_000,
  closeTimeoutMs: 30_000,
});

/** Fills in defaults and checks that the limits make sense together. */
export function resolveLimits(partial: Partial<ProtocolLimits> | undefined): ProtocolLimits {
  const limits: ProtocolLimits = { ...LIMITS_DEFAULT, ...partial };
  assert(limits.frameBodyBytesMax >= SINGLE_ITEM_BYTES_MAX, 'frameBodyBytesMax below one account view');
  assert(limits.frameBodyBytesMax <= FRAME_BODY_BYTES_DEFAULT, 'frameBodyBytesMax above one full batch');
  assert(limits.inFlightRequestsMax >= 1 && limits.inFlightRequestsMax <= 0xffff, 'inFlightRequestsMax out of range');
  assert(limits.inFlightBytesMax >= limits.frameBodyBytesMax, 'inFlightBytesMax below one frame');
  assert(limits.connectionsMax >= 1, 'connectionsMax must be positive');
  return Object.freeze(limits);
}
