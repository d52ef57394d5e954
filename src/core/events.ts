/**
 * Event encoding: the facts written to the log. Byte tables in docs/LOG-FORMAT.md.
 *
 * AccountOpened (type 1)            TransferRecorded (type 2)
 * | off | bytes | field          |  | off | bytes | field                                   |
 * | 0   | 1     | type = 1       |  | 0   | 1     | type = 2                                |
 * | 1   | 1     | id length n    |  | 1   | 1     | kind (1 transfer, 2 deposit, 3 withdr.) |
 * | 2   | 2     | currency (num) |  | 2   | 1     | result wire code (0 = success)          |
 * | 4   | 1     | owner length m |  | 3   | 1     | transaction id length t                 |
 * | 5   | n     | account id     |  | 4   | 2     | currency, ISO numeric                   |
 * | 5+n | m     | owner id       |  | 6   | 1     | from id inline length (0 = by index)    |
 *                                   | 7   | 1     | to id inline length (0 = by index)      |
 * The account index of an opened   | 8   | 4     | from account index (0xFFFFFFFF: inline) |
 * account is implicit: accounts    | 12  | 4     | to account index (0xFFFFFFFF: inline)   |
 * are numbered in the order they   | 16  | 8     | amount, u64 minor units                 |
 * were opened.                     | 24  | 8     | from balance after, i64 (0 if rejected) |
 *                                   | 32  | 8     | to balance after, i64 (0 if rejected)   |
 *                                   | 40  | 8     | from's previous entry sequence (u64)    |
 *                                   | 48  | 8     | to's previous entry sequence (u64)      |
 *                                   | 56  | t     | transaction id                          |
 *                                   | ... | f, g  | inline from id, inline to id            |
 *
 * Ids are inline only when the account does not exist (an account_not_found rejection).
 * All integers little-endian.
 */
import { assert } from '../stdx/assert.js';

export const EventType = { accountOpened: 1, transferRecorded: 2 } as const;
export const TRANSFER_FIXED_BYTES = 56;
export const ACCOUNT_OPENED_FIXED_BYTES = 5;
export const NO_INDEX = 0xffffffff;
/** Largest possible event: a transfer with a 64-byte id and two inline 64-byte ids. */
export const EVENT_BYTES_MAX = TRANSFER_FIXED_BYTES + 3 * 64;

export type AccountOpenedEvent = {
  type: 1;
  accountId: string;
  currencyNumeric: number;
  owner: string;
};

export type TransferRecordedEvent = {
  type: 2;
  kind: number;
  code: number;
  currencyNumeric: number;
  transactionId: string;
  fromIndex: number;
  toIndex: number;
  fromInline: string;
  toInline: string;
  amount: bigint;
  fromBalanceAfter: bigint;
  toBalanceAfter: bigint;
  fromPreviousSequence: number;
  toPreviousSequence: number;
};

export type LedgerEvent = AccountOpenedEvent | TransferRecordedEvent;

/** Decodes the event at bytes[offset..]; returns the event and its encoded length. */
export function decodeEvent(bytes: Buffer, offset: number): { event: LedgerEvent; bytes: number } {
  const type = bytes[offset];
  if (type === EventType.accountOpened) return decodeAccountOpened(bytes, offset);
  assert(type === EventType.transferRecorded, `unknown event type ${String(type)} at offset ${offset}`);
  return decodeTransferRecorded(bytes, offset);
}

function decodeAccountOpened(bytes: Buffer, offset: number): { event: AccountOpenedEvent; bytes: number } {
  const idLength = bytes[offset + 1]!;
  const ownerLength = bytes[offset + 4]!;
  const idStart = offset + ACCOUNT_OPENED_FIXED_BYTES;
  const event: AccountOpenedEvent = {
    type: 1,
    accountId: bytes.toString('latin1', idStart, idStart + idLength),
    currencyNumeric: bytes.readUInt16LE(offset + 2),
    owner: bytes.toString('latin1', idStart + idLength, idStart + idLength + ownerLength),
  };
  return { event, bytes: ACCOUNT_OPENED_FIXED_BYTES + idLength + ownerLength };
}

function decodeTransferRecorded(bytes: Buffer, offset: number): { event: TransferRecordedEvent; bytes: number } {
  const idLength = bytes[offset + 3]!;
  const fromInlineLength = bytes[offset + 6]!;
  const toInlineLength = bytes[offset + 7]!;
  const idStart = offset + TRANSFER_FIXED_BYTES;
  const fromStart = idStart + idLength;
  const toStart = fromStart + fromInlineLength;
  const event: TransferRecordedEvent = {
    type: 2,
    kind: bytes[offset + 1]!,
    code: bytes[offset + 2]!,
    currencyNumeric: bytes.readUInt16LE(offset + 4),
    transactionId: bytes.toString('latin1', idStart, idStart + idLength),
    fromIndex: bytes.readUInt32LE(offset + 8),
    toIndex: bytes.readUInt32LE(offset + 12),
    fromInline: bytes.toString('latin1', fromStart, fromStart + fromInlineLength),
    toInline: bytes.toString('latin1', toStart, toStart + toInlineLength),
    amount: bytes.readBigUInt64LE(offset + 16),
    fromBalanceAfter: bytes.readBigInt64LE(offset + 24),
    toBalanceAfter: bytes.readBigInt64LE(offset + 32),
    fromPreviousSequence: Number(bytes.readBigUInt64LE(offset + 40)),
    toPreviousSequence: Number(bytes.readBigUInt64LE(offset + 48)),
  };
  return { event, bytes: TRANSFER_FIXED_BYTES + idLength + fromInlineLength + toInlineLength };
}

/** Encodes AccountOpened at `offset`; returns the bytes written. */
export function encodeAccountOpened(bytes: Buffer, offset: number, accountId: string, currencyNumeric: number, owner: string): number {
  assert(accountId.length >= 1 && accountId.length <= 64, 'account id length');
  assert(owner.length >= 1 && owner.length <= 64, 'owner length');
  bytes[offset] = EventType.accountOpened;
  bytes[offset + 1] = accountId.length;
  bytes.writeUInt16LE(currencyNumeric, offset + 2);
  bytes[offset + 4] = owner.length;
  bytes.write(accountId, offset + ACCOUNT_OPENED_FIXED_BYTES, 'latin1');
  bytes.write(owner, offset + ACCOUNT_OPENED_FIXED_BYTES + accountId.length, 'latin1');
  return ACCOUNT_OPENED_FIXED_BYTES + accountId.length + owner.length;
}
