/**
 * walletd client SDK (`import { WalletClient } from 'walletd/client'`): typed calls over the
 * binary batch protocol, with automatic batching, pipelining and safe reconnection.
 * Usage in docs/CLIENT.md; wire format in docs/PROTOCOL.md.
 */
export { WalletClient } from './client.js';
export type {
  AccountResult,
  ConnectOptions,
  Failure,
  OpenAccountArgs,
  OpenAccountResult,
  TransferResult,
  TransferStatusResult,
} from './client.js';
export type { Amount, MovementArgs, TransferArgs } from './commands.js';
export type { AccountInfo, TransferInfo } from './views.js';
export type { ResultColumns as BatchResults } from '../protocol/frame.js';
export { ERRORS, WalletError, codeOfWire } from '../core/errors.js';
export type { ErrorCode } from '../core/errors.js';
export { BATCH_RECORDS_MAX, RECORD_BYTES, Kind, writeTransferRecord } from '../core/transfer-record.js';
export type { TransferCommand } from '../core/transfer-record.js';
