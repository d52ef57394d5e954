/**
 * walletd as a bench target, through its own client SDK over the binary protocol: one
 * WalletClient per connection, each with several frames in flight (pipelining). Setup opens
 * the accounts and funds them with deposit records; the check reads balances back.
 */
import { WalletClient } from '../client/mod.js';
import { assert } from '../stdx/assert.js';
import { RECORD_BYTES, writeTransferRecord } from '../core/transfer-record.js';
import type { BenchTarget } from './target.js';
import { WORKLOAD_CURRENCY_CODE, WORKLOAD_CURRENCY_NUMERIC, type BatchView, type Workload } from './workload.js';
import type { WalletdServer } from './walletd-server.js';

/**
 * Setup and the check use their own connections, each with as many frames in flight as the
 * server allows (32): an account opening is one small frame, and the engine commits all the
 * openings it finds queued with one fsync, so more in flight means bigger groups.
 */
const LOOKUP_CONNECTIONS = 8;
const LOOKUP_FRAMES_IN_FLIGHT = 32;

export type WalletdEndpoint = Readonly<{ host: string; port: number; token: string }>;

export class WalletdTarget implements BenchTarget {
  readonly name = 'walletd';
  readonly lanes: number;

  private constructor(
    private readonly endpoint: WalletdEndpoint,
    private readonly clients: readonly WalletClient[],
    framesInFlightPerConnection: number,
    readonly durability: string,
    private readonly server: WalletdServer | undefined,
  ) {
    this.lanes = clients.length * framesInFlightPerConnection;
  }

  /** Connects `connections` clients; `server` (if the bench started it) is stopped by close(). */
  static async connect(
    endpoint: WalletdEndpoint,
    options: Readonly<{ connections: number; framesInFlightPerConnection: number; durability: string; server?: WalletdServer }>,
  ): Promise<WalletdTarget> {
    assert(options.connections >= 1 && options.framesInFlightPerConnection >= 1);
    const clients: WalletClient[] = [];
    try {
      for (let index = 0; index < options.connections; index++) {
        clients.push(
          await WalletClient.connect({ ...endpoint, framesInFlightMax: options.framesInFlightPerConnection, reconnectTimeMsMax: 5_000 }),
        );
      }
    } catch (error) {
      await Promise.allSettled(clients.map((client) => client.close()));
      await options.server?.stop();
      throw error;
    }
    return new WalletdTarget(endpoint, clients, options.framesInFlightPerConnection, options.durability, options.server);
  }

  async setup(workload: Workload, onProgress: (accountsDone: number) => void): Promise<void> {
    await this.forEachAccount(workload.spec.accounts, async (index, client) => {
      const opened = await client.openAccount({ accountId: workload.accountId(index), currency: WORKLOAD_CURRENCY_CODE });
      if (!opened.ok) throw new Error(`opening ${workload.accountId(index)}: ${opened.code}`);
      if (!opened.created && opened.account.balanceMinor !== 0n) throw new Error(`${workload.accountId(index)} already existed with money`);
    });
    await this.deposit(workload, onProgress);
  }

  async submit(batch: BatchView, lane: number): Promise<Uint8Array> {
    const results = await this.client(lane).submitBatch(batch.bytes, batch.count);
    return results.codes;
  }

  async readBalances(workload: Workload): Promise<BigInt64Array> {
    const balances = new BigInt64Array(workload.spec.accounts);
    await this.forEachAccount(workload.spec.accounts, async (index, client) => {
      const found = await client.account(workload.accountId(index));
      if (!found.ok) throw new Error(`reading ${workload.accountId(index)}: ${found.code}`);
      balances[index] = found.account.balanceMinor;
    });
    return balances;
  }

  async serverPids(): Promise<number[]> {
    // A --target server may be on another machine: its CPU is not ours to read.
    return this.server === undefined ? [] : [this.server.pid];
  }

  async close(): Promise<void> {
    try {
      await Promise.allSettled(this.clients.map((client) => client.close()));
    } finally {
      await this.server?.stop();
    }
  }

  /** Funds every account with one deposit record each, in full frames. */
  private async deposit(workload: Workload, onProgress: (accountsDone: number) => void): Promise<void> {
    const perFrame = workload.spec.batchRecords;
    const frames: Promise<void>[] = [];
    let framesDone = 0;
    for (let start = 0; start < workload.spec.accounts; start += perFrame) {
      const count = Math.min(perFrame, workload.spec.accounts - start);
      const bytes = Buffer.alloc(count * RECORD_BYTES);
      for (let offset = 0; offset < count; offset++) {
        writeTransferRecord(bytes, offset, {
          kind: 'deposit',
          transactionId: workload.depositId(start + offset),
          fromAccount: '',
          toAccount: workload.accountId(start + offset),
          amountMinor: workload.fundingMinor(start + offset),
          currencyNumeric: WORKLOAD_CURRENCY_NUMERIC,
        });
      }
      const client = this.client(frames.length);
      frames.push(
        client.submitBatch(bytes, count).then((results) => {
          const failed = results.codes.findIndex((code) => code !== 0);
          if (failed >= 0) throw new Error(`deposit to ${workload.accountId(start + failed)} failed with wire code ${results.codes[failed]}`);
          onProgress(Math.min(workload.spec.accounts, ++framesDone * perFrame));
        }),
      );
      // Bounded: never more than a few frames per connection waiting in the client.
      if (frames.length % (this.clients.length * 4) === 0) await Promise.all(frames.splice(0));
    }
    await Promise.all(frames);
  }

  /** Runs `work` for accounts 0 .. n−1 on fresh lookup connections, a bounded number at a time. */
  private async forEachAccount(accounts: number, work: (index: number, client: WalletClient) => Promise<void>): Promise<void> {
    const clients: WalletClient[] = [];
    try {
      for (let index = 0; index < LOOKUP_CONNECTIONS; index++) {
        clients.push(await WalletClient.connect({ ...this.endpoint, framesInFlightMax: LOOKUP_FRAMES_IN_FLIGHT }));
      }
      let next = 0;
      const worker = async (client: WalletClient): Promise<void> => {
        while (next < accounts) await work(next++, client);
      };
      const workers: Promise<void>[] = [];
      // Twice the frames in flight, so a new request is queued the moment an answer comes back.
      for (const client of clients) for (let lane = 0; lane < 2 * LOOKUP_FRAMES_IN_FLIGHT; lane++) workers.push(worker(client));
      await Promise.all(workers);
    } finally {
      await Promise.allSettled(clients.map((client) => client.close()));
    }
  }

  private client(lane: number): WalletClient {
    const client = this.clients[lane % this.clients.length];
    assert(client !== undefined);
    return client;
  }
}
