/**
 * The Redis peer: the write-up's first design (balances in Redis, moved by a Lua script) on one
 * node. One EVALSHA per transfer checks the transfer id, the currencies and the balance, moves
 * the money and remembers the outcome, atomically (Redis runs a script to completion before
 * any other command). Batches are pipelined: one write, one read per batch per connection.
 *
 * Keys: `<prefix>b:<account>` holds the balance in minor units, `<prefix>c:<account>` the
 * currency's numeric code, `<prefix>t:<transaction>` the first outcome's wire code.
 */
import { Redis } from 'ioredis';
import { assert } from '../../stdx/assert.js';
import { Wire } from '../../core/errors.js';
import { amountInRange } from '../../core/money.js';
import type { PeerLedger, PeerTransfer } from './peer-ledger.js';
import { bulk, RespPipe } from './resp-pipe.js';

export const REDIS_CONNECTIONS_MAX = 64;
const COMMANDS_PER_PIPELINE = 10_000;
const SCAN_COUNT = 10_000;
const PREFIX_PATTERN = /^[A-Za-z0-9_:.-]{1,64}$/;

/**
 * KEYS: transaction, balance of from, balance of to, currency of from, currency of to.
 * ARGV: amount (minor units), currency numeric.
 *
 * SET NX claims the transaction id and stores the success code in one call; a rejection
 * overwrites it (scripts are atomic, so nobody sees the interim value). Balances change only
 * through DECRBY/INCRBY, exact 64-bit integer arithmetic in Redis (Lua numbers are doubles, exact
 * only below 2^53), and only the sign of the result is used: a debit that goes negative is
 * undone inside the same script. Five Redis calls on the success path; every call costs about a
 * microsecond of script overhead, so the script is kept to the fewest.
 */
const TRANSFER_SCRIPT = `
if not redis.call('SET', KEYS[1], '0', 'NX') then
  return tonumber(redis.call('GET', KEYS[1]))
end
local code = 0
if KEYS[2] == KEYS[3] then
  code = 3
else
  local currencies = redis.call('MGET', KEYS[4], KEYS[5])
  if not currencies[1] or not currencies[2] then
    code = 4
  elseif currencies[1] ~= ARGV[2] or currencies[2] ~= ARGV[2] then
    code = 2
  elseif redis.call('DECRBY', KEYS[2], ARGV[1]) < 0 then
    redis.call('INCRBY', KEYS[2], ARGV[1])
    code = 1
  else
    local credited = redis.pcall('INCRBY', KEYS[3], ARGV[1])
    if type(credited) == 'table' and credited.err then
      redis.call('INCRBY', KEYS[2], ARGV[1])
      code = 5
    end
  end
end
if code ~= 0 then redis.call('SET', KEYS[1], code) end
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

  /** EVALSHA <sha> 5, the start of every transfer command (10 arguments in all). */
  private readonly evalshaHead: string;

  private constructor(
    private readonly admin: Redis,
    private readonly pipes: RespPipe[],
    private readonly prefix: string,
    scriptSha: string,
  ) {
    this.evalshaHead = `*10\r\n${bulk('EVALSHA')}${bulk(scriptSha)}${bulk('5')}`;
  }

  static async open(options: RedisWalletOptions): Promise<RedisWallet> {
    assert(PREFIX_PATTERN.test(options.keyPrefix), 'key prefix must be plain text');
    const count = options.connections ?? 1;
    assert(Number.isInteger(count) && count >= 1 && count <= REDIS_CONNECTIONS_MAX, 'connection count out of range');
    const pipes: RespPipe[] = [];
    // One general client for setup, reads and cleanup; raw pipes for the transfers.
    const admin = new Redis({ host: options.host, port: options.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await admin.connect();
      for (let index = 0; index < count; index++) pipes.push(await RespPipe.connect(options.host, options.port));
      const sha = (await admin.script('LOAD', TRANSFER_SCRIPT)) as string;
      const wallet = new RedisWallet(admin, pipes, options.keyPrefix, sha);
      wallet.durability = describeDurability(await wallet.serverInfo());
      return wallet;
    } catch (error) {
      admin.disconnect();
      for (const pipe of pipes) pipe.close();
      throw error;
    }
  }

  balanceKey(accountId: string): string {
    return `${this.prefix}b:${accountId}`;
  }

  currencyKey(accountId: string): string {
    return `${this.prefix}c:${accountId}`;
  }

  /** Opens accounts with an opening balance each (setup, not measured). */
  async openAccounts(accountIds: readonly string[], currencyNumeric: number, balancesMinor: readonly bigint[]): Promise<void> {
    assert(accountIds.length === balancesMinor.length);
    const connection = this.admin;
    for (let start = 0; start < accountIds.length; start += COMMANDS_PER_PIPELINE) {
      const pipeline = connection.pipeline();
      const end = Math.min(accountIds.length, start + COMMANDS_PER_PIPELINE);
      for (let index = start; index < end; index++) {
        const id = accountIds[index] ?? '';
        pipeline.set(this.currencyKey(id), String(currencyNumeric)).set(this.balanceKey(id), String(balancesMinor[index]));
      }
      throwOnPipelineError(await pipeline.exec());
    }
  }

  /** Applies transfers in one pipeline on connection `lane`; one wire code per transfer. */
  async transfers(transfers: readonly PeerTransfer[], lane = 0): Promise<Uint8Array> {
    const codes = new Uint8Array(transfers.length);
    const sent: number[] = [];
    let commands = '';
    transfers.forEach((t, index) => {
      if (amountInRange(t.amountMinor) === undefined) {
        codes[index] = Wire.invalid_amount;
        return;
      }
      sent.push(index);
      commands +=
        this.evalshaHead +
        bulk(`${this.prefix}t:${t.transactionId}`) +
        bulk(this.balanceKey(t.fromAccount)) +
        bulk(this.balanceKey(t.toAccount)) +
        bulk(this.currencyKey(t.fromAccount)) +
        bulk(this.currencyKey(t.toAccount)) +
        bulk(t.amountMinor.toString()) +
        bulk(String(t.currencyNumeric));
    });
    if (sent.length === 0) return codes;
    const replies = await this.pipe(lane).send(commands, sent.length);
    replies.forEach((code, reply) => {
      codes[sent[reply] ?? 0] = code;
    });
    return codes;
  }

  async balances(accountIds: readonly string[]): Promise<Map<string, bigint>> {
    const found = new Map<string, bigint>();
    const connection = this.admin;
    for (let start = 0; start < accountIds.length; start += COMMANDS_PER_PIPELINE) {
      const ids = accountIds.slice(start, start + COMMANDS_PER_PIPELINE);
      const pipeline = connection.pipeline();
      for (const id of ids) pipeline.get(this.balanceKey(id));
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
    const value = await this.admin.get(`${this.prefix}t:${transactionId}`);
    return value === null ? undefined : Number(value);
  }

  /** The redis-server's pid and whether it writes an append-only file, from INFO. */
  async serverInfo(): Promise<{ pid: number; appendOnly: boolean; appendFsync: string }> {
    const connection = this.admin;
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
      this.admin.disconnect();
      for (const pipe of this.pipes) pipe.close();
    }
  }

  private async deleteKeys(): Promise<void> {
    const connection = this.admin;
    let cursor = '0';
    do {
      const [next, keys] = await connection.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', SCAN_COUNT);
      cursor = next;
      if (keys.length > 0) await connection.unlink(...keys);
    } while (cursor !== '0');
  }

  private pipe(lane: number): RespPipe {
    const pipe = this.pipes[lane % this.pipes.length];
    assert(pipe !== undefined);
    return pipe;
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
