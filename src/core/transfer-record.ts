/**
 * The fixed-size transfer command record: the one input format of the engine, used unchanged
 * on the binary protocol, and built from JSON by the HTTP layer. Byte table in docs/PROTOCOL.md.
 *
 * | offset | bytes | field                                                     |
 * |--------|-------|-----------------------------------------------------------|
 * | 0      | 64    | transaction_id, ASCII, NUL-padded                         |
 * | 64     | 64    | from account id, NUL-padded; all zero for a deposit       |
 * | 128    | 64    | to account id, NUL-padded; all zero for a withdrawal      |
 * | 192    | 8     | amount, u64 little-endian, minor units (1 ..= 2^63−1)     |
 * | 200    | 2     | currency, ISO 4217 numeric code, u16 little-endian        |
 * | 202    | 1     | kind: 1 transfer, 2 deposit, 3 withdrawal                 |
 * | 203    | 5     | reserved, must be zero                                    |
 *
 * An id is 1–64 bytes of [A-Za-z0-9_.:-]; NUL never occurs in one, so padding is unambiguous.
 */
import { assert } from '../stdx/assert.js';
import { ID_BYTES_MAX } from './ids.js';

export const RECORD_BYTES = 208;
export const RECORD_OFFSET_TRANSACTION_ID = 0;
export const RECORD_OFFSET_FROM = 64;
export const RECORD_OFFSET_TO = 128;
export const RECORD_OFFSET_AMOUNT = 192;
export const RECORD_OFFSET_CURRENCY = 200;
export const RECORD_OFFSET_KIND = 202;
export const RECORD_OFFSET_RESERVED = 203;
export const RECORD_RESERVED_BYTES = 5;
/** The most records in one batch (one binary frame, one HTTP batch request). */
export const BATCH_RECORDS_MAX = 8190;

export const Kind = { transfer: 1, deposit: 2, withdrawal: 3 } as const;
export type TransferKind = keyof typeof Kind;
export const KIND_NAMES: Readonly<Record<number, TransferKind>> = { 1: 'transfer', 2: 'deposit', 3: 'withdrawal' };

export type TransferCommand = Readonly<{
  kind: TransferKind;
  transactionId: string;
  /** Customer account debited; '' for a deposit (the external account is implied). */
  fromAccount: string;
  /** Customer account credited; '' for a withdrawal. */
  toAccount: string;
  amountMinor: bigint;
  currencyNumeric: number;
}>;

assert(RECORD_OFFSET_FROM - RECORD_OFFSET_TRANSACTION_ID === ID_BYTES_MAX);
assert(RECORD_OFFSET_RESERVED + RECORD_RESERVED_BYTES === RECORD_BYTES);

/**
 * Writes a command into `bytes` at record `index`. The caller has validated ids as ASCII of at
 * most 64 bytes; the engine validates every byte again because binary input is untrusted.
 */
export function writeTransferRecord(bytes: Buffer, index: number, command: TransferCommand): void {
  const base = index * RECORD_BYTES;
  assert(base + RECORD_BYTES <= bytes.length, 'record index out of range');
  bytes.fill(0, base, base + RECORD_BYTES);
  writeZeroedRecord(bytes, base, command);
}

/** Writes the fields of a record whose 208 bytes at `base` are already zero (through the Buffer: no view per call). */
function writeZeroedRecord(bytes: Buffer, base: number, command: TransferCommand): void {
  writeId(bytes, base + RECORD_OFFSET_TRANSACTION_ID, command.transactionId);
  writeId(bytes, base + RECORD_OFFSET_FROM, command.fromAccount);
  writeId(bytes, base + RECORD_OFFSET_TO, command.toAccount);
  bytes.writeBigUInt64LE(BigInt.asUintN(64, command.amountMinor), base + RECORD_OFFSET_AMOUNT);
  bytes.writeUInt16LE(command.currencyNumeric & 0xffff, base + RECORD_OFFSET_CURRENCY);
  bytes[base + RECORD_OFFSET_KIND] = Kind[command.kind];
}

/**
 * Writes `id` into a 64-byte field at `offset` (the caller has zeroed the field: NUL padding).
 * A character loop: ids are short, and Buffer#write's call into C++ costs more than the copy.
 */
export function writeId(bytes: Uint8Array, offset: number, id: string): void {
  const length = id.length;
  assert(length <= ID_BYTES_MAX, 'id longer than 64 bytes');
  for (let i = 0; i < length; i++) {
    const code = id.charCodeAt(i);
    assert(code < 0x100, 'id is not single-byte text');
    bytes[offset + i] = code;
  }
}

/** Reads the NUL-padded id at `offset` (for views and errors; the hot path stays on bytes). */
export function readId(bytes: Uint8Array, offset: number): string {
  let end = offset;
  const limit = offset + ID_BYTES_MAX;
  while (end < limit && bytes[end] !== 0) end++;
  return Buffer.from(bytes.buffer, bytes.byteOffset + offset, end - offset).toString('latin1');
}

export function readTransferRecord(bytes: Uint8Array, index: number): TransferCommand {
  const base = index * RECORD_BYTES;
  const view = Buffer.from(bytes.buffer, bytes.byteOffset + base, RECORD_BYTES);
  return {
    kind: KIND_NAMES[view[RECORD_OFFSET_KIND] ?? 0] ?? 'transfer',
    transactionId: readId(bytes, base + RECORD_OFFSET_TRANSACTION_ID),
    fromAccount: readId(bytes, base + RECORD_OFFSET_FROM),
    toAccount: readId(bytes, base + RECORD_OFFSET_TO),
    amountMinor: view.readBigUInt64LE(RECORD_OFFSET_AMOUNT),
    currencyNumeric: view.readUInt16LE(RECORD_OFFSET_CURRENCY),
  };
}

/**
 * Encodes commands into a fresh batch buffer (fresh because the engine reads it until the
 * submit settles). Allocated zeroed in one call, so no record needs zeroing on its own.
 */
export function encodeTransferBatch(commands: readonly TransferCommand[]): Buffer {
  assert(commands.length <= BATCH_RECORDS_MAX, 'batch too large');
  const bytes = Buffer.alloc(commands.length * RECORD_BYTES);
  for (let index = 0; index < commands.length; index++) writeZeroedRecord(bytes, index * RECORD_BYTES, commands[index]!);
  return bytes;
}
