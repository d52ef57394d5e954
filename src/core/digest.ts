/**
 * The state digest: SHA-256 over the whole state in a canonical order: accounts in opening
 * order (ids, owners, currencies, balances, statement heads) and an order-independent fold of
 * every remembered transaction outcome. None of it depends on hash-table capacities or on
 * whether the state came from a snapshot plus a tail or a full replay, so the same log gives
 * the same digest on any (little-endian) machine.
 */
import { createHash } from 'node:crypto';
import { LedgerState } from './ledger-state.js';

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export function stateDigest(state: LedgerState): string {
  const hash = createHash('sha256');
  const n = state.accountCount;
  const header = Buffer.alloc(32);
  header.write('walletd-state-v1', 0, 'latin1');
  header.writeBigUInt64LE(BigInt(state.headSequence), 16);
  header.writeUInt32LE(n, 24);
  header.writeUInt32LE(state.txns.count, 28);
  hash.update(header);
  const accounts = state.accounts.exportParts();
  const owners = state.owners.exportParts();
  hash.update(accounts.lengths).update(owners.lengths);
  hash.update(bytesOf(accounts.arena)).update(bytesOf(owners.arena));
  hash.update(bytesOf(state.accountRecords()));
  hash.update(bytesOf(state.txns.contentFold()));
  return hash.digest('hex');
}
