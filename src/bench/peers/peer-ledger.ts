/**
 * What the bench and the peer tests need from a peer ledger (PostgreSQL, Redis): the same
 * operations and the same result codes as walletd, so one workload and one check fit all.
 */
import type { TransferCommand } from '../../core/transfer-record.js';

/** A transfer between two customer accounts: walletd's command without the kind. */
export type PeerTransfer = Omit<TransferCommand, 'kind'>;

export interface PeerLedger {
  /** How acknowledged transfers survive a crash, in words. */
  readonly durability: string;
  /** Opens accounts with an opening balance each (setup, not measured). */
  openAccounts(accountIds: readonly string[], currencyNumeric: number, balancesMinor: readonly bigint[]): Promise<void>;
  /** Applies transfers (concurrently where the ledger can); one walletd wire code per transfer. */
  transfers(transfers: readonly PeerTransfer[], lane?: number): Promise<Uint8Array>;
  /** Optional: answer queued, not yet started transfers with `code` instead of running them. */
  cancelQueued?(code: number): number;
  /** Balances of the accounts that exist among `accountIds`. */
  balances(accountIds: readonly string[]): Promise<Map<string, bigint>>;
  /** Process ids of the server, for CPU and memory figures. */
  serverPids(): Promise<number[]>;
  /** Removes this ledger's tables or keys, then disconnects. */
  close(): Promise<void>;
}
