/**
 * The Redis peer: the write-up's first design (balances in Redis, moved by a Lua script) on one
 * node. One EVALSHA per transfer checks the transfer id, the currencies and the balance, moves
 * the money and remembers the outcome, atomically (Redis runs a script to completion before
 * any other command). Batches are pipelined: one write, one read per batch per connection.
 *
 * Keys: `<prefix>a:<account>` is a hash {c: currency numeric, b: balance minor units};
 * `<prefix>t:<transaction>` holds the first outcome's wire code.
 */
import { Redis } from 'ioredis';
import { assert } from '../../stdx/assert.js';
import { Wire } from '../../core/errors.js';
import type { PeerLedger, PeerTransfer } from './peer-ledger.js';

const CONNECTIONS_MAX = 64;
const COMMANDS_PER_PIPELINE = 10_000;
const SCAN_COUNT = 10_000;
const PREFIX_PATTERN = /^[A-Za-z0-9_:.-]{1,64}$/;

/**
 * Balances change only through HINCRBY, which is exact 64-bit integer arithmetic in Redis
 * (Lua numbers are doubles, exact only below 2^53). Only the sign of the HINCRBY result is
 * used: a debit that goes negative is undone inside the same script, so nobody sees it.
 */
export const TRANSFER_SCRIPT = `
local done = redis.call('GET', KEYS[1])
if done then return tonumber(done) end
local code = 0
if KEYS[2] == KEYS[3] then
  code = 3
else
  local fromCurrency = redis.call('HGET', KEYS[2], 'c')
  local toCurrency = redis.call('HGET', KEYS[3], 'c')
  if not fromCurrency or not toCurrency then
    code = 4
  elseif fromCurrency ~= ARGV[2] or toCurrency ~= ARGV[2] then
    code = 2
  elseif redis.call('HINCRBY', KEYS[2], 'b', '-' .. ARGV[1]) < 0 then
    redis.call('HINCRBY', KEYS[2], 'b', ARGV[1])
    code = 1
  else
    local credited = redis.pcall('HINCRBY', KEYS[3], 'b', ARGV[1])
    if type(credited) == 'table' and credited.err then
      redis.call('HINCRBY', KEYS[2], 'b', ARGV[1])
      code = 5
    end
  end
end
redis.call('SET', KEYS[1], code)
return code
`;

export type RedisWalletOptions = Readonly<{
  host: string;
  port: number;
  /** Every key starts with this, so runs and tests never share keys; close() deletes them. */
  keyPrefix: string;
  connections?: number;
}>;

export class RedisWallet implements PeerLedger {
  /** Read from the server at open: what its persistence settings promise. */
  durability = '';

  private constructor(
    private readonly connections: Redis[],
    private readonly prefix: string,
    private readonly scriptSha: string,
  ) {}

  static async open(options: RedisWalletOptions): Promise<RedisWallet> {
    assert(PREFIX_PATTERN.test(options.keyPrefix), 'key prefix must be plain text');
    const count = options.connections ?? 1;
    assert(Number.isInteger(count) && count >= 1 && count <= CONNECTIONS_MAX, 'connection count out of range');
    const connections: Redis[] = [];
    try {
      for (let index = 0; index < count; index++) {
        const connection = new Redis({ host: options.host, port: options.port, lazyConnect: true, maxRetriesPerRequest: 0 });
        connections.push(connection);
        await connection.connect();
      }
      const first = connections[0];
      assert(first !== undefined);
      const sha = (await first.script('LOAD', TRANSFER_SCRIPT)) as string;
      const wallet = new RedisWallet(connections, options.keyPrefix, sha);
      wallet.durability = describeDurability(await wallet.serverInfo());
      return wallet;
    } catch (error) {
      for (const connection of connections) connection.disconnect();
      throw error;
    }
  }

  accountKey(accountId: string): string {
    return `${this.prefix}a:${accountId}`;
  }

  /** Opens accounts with an opening balance each (setup, not measured). */
  async openAccounts(accountIds: readonly string[], currencyNumeric: number, balancesMinor: readonly bigint[]): Promise<void> {
    assert(accountIds.length === balancesMinor.length);
    const connection = this.connection(0);
    for (let start = 0; start < accountIds.length; start += COMMANDS_PER_PIPELINE) {
      const pipeline = connection.pipeline();
      const end = Math.min(accountIds.length, start + COMMANDS_PER_PIPELINE);
      for (let index = start; index < end; index++) {
        pipeline.hset(this.accountKey(accountIds[index] ?? ''), 'c', String(currencyNumeric), 'b', String(balancesMinor[index]));
      }
      throwOnPipelineError(await pipeline.exec());
    }
  }

  /** Applies transfers in one pipeline on connection `lane`; one wire code per transfer. */
  async transfers(transfers: readonly PeerTransfer[], lane = 0): Promise<Uint8Array> {
    const codes = new Uint8Array(transfers.length);
    const pipeline = this.connection(lane).pipeline();
    const sent: number[] = [];
    transfers.forEach((t, index) => {
      if (t.amountMinor <= 0n || t.amountMinor >= 1n << 63n) {
        codes[index] = Wire.invalid_amount;
        return;
      }
      sent.push(index);
      pipeline.evalsha(
        this.scriptSha,
        3,
        `${this.prefix}t:${t.transactionId}`,
        this.accountKey(t.fromAccount),
        this.accountKey(t.toAccount),
        t.amountMinor.toString(),
        String(t.currencyNumeric),
      );
    });
    if (sent.length === 0) return codes;
    const replies = await pipeline.exec();
    assert(replies !== null && replies.length === sent.length, 'one reply per command');
    replies.forEach(([error, code], reply) => {
      if (error !== null) throw error;
      assert(typeof code === 'number');
      codes[sent[reply] ?? 0] = code;
    });
    return codes;
  }

  async balances(accountIds: readonly string[]): Promise<Map<string, bigint>> {
    const found = new Map<string, bigint>();
    const connection = this.connection(0);
    for (let start = 0; start < accountIds.length; start += COMMANDS_PER_PIPELINE) {
      const ids = accountIds.slice(start, start + COMMANDS_PER_PIPELINE);
      const pipeline = connection.pipeline();
      for (const id of ids) pipeline.hget(this.accountKey(id), 'b');
      const replies = await pipeline.exec();
      assert(replies !== null);
      replies.forEach(([error, value], index) => {
        if (error !== null) throw error;
        if (typeof value === 'string') found.set(ids[index] ?? '', BigInt(value));
      });
    }
    return found;
  }

  /** The outcome remembered for a transaction id, if any. */
  async outcome(transactionId: string): Promise<number | undefined> {
    const value = await this.connection(0).get(`${this.prefix}t:${transactionId}`);
    return value === null ? undefined : Number(value);
  }

  /** The redis-server's pid and whether it writes an append-only file, from INFO. */
  async serverInfo(): Promise<{ pid: number; appendOnly: boolean; appendFsync: string }> {
    const connection = this.connection(0);
    const info = await connection.info();
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1] ?? NaN);
    const appendOnly = /aof_enabled:1/.test(info);
    const config = (await connection.config('GET', 'appendfsync')) as string[];
    return { pid, appendOnly, appendFsync: config[1] ?? 'unknown' };
  }

  async serverPids(): Promise<number[]> {
    return [(await this.serverInfo()).pid];
  }

  /** Deletes every key of this prefix, then disconnects. */
  async close(): Promise<void> {
    try {
      await this.deleteKeys();
    } finally {
      for (const connection of this.connections) connection.disconnect();
    }
  }

  private async deleteKeys(): Promise<void> {
    const connection = this.connection(0);
    let cursor = '0';
    do {
      const [next, keys] = await connection.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', SCAN_COUNT);
      cursor = next;
      if (keys.length > 0) await connection.unlink(...keys);
    } while (cursor !== '0');
  }

  private connection(lane: number): Redis {
    const connection = this.connections[lane % this.connections.length];
    assert(connection !== undefined);
    return connection;
  }
}

function describeDurability(info: Readonly<{ appendOnly: boolean; appendFsync: string }>): string {
  if (!info.appendOnly) return 'appendonly no (memory only, lost on crash)';
  if (info.appendFsync === 'always') return 'appendonly yes, appendfsync always (fsync before reply)';
  return `appendonly yes, appendfsync ${info.appendFsync} (may lose the last second)`;
}

function throwOnPipelineError(replies: Array<[Error | null, unknown]> | null): void {
  assert(replies !== null);
  for (const [error] of replies) if (error !== null) throw error;
}
