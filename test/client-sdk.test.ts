/**
 * The client SDK against a real protocol server and a real engine on a temp dir.
 *
 * Checks: the typed calls and their error codes, local validation that never reaches the
 * server, automatic batching (concurrent calls share frames, no frame over 8,190 records),
 * raw submitBatch, authentication and owner limits, close, and the retry path: a connection
 * cut after a request reached the engine but before its answer came back (by a TCP proxy, and
 * at an exact point over the in-memory transport) is retried on a new connection and never
 * applied twice.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Principal } from '../src/auth/principal.js';
import { WalletClient, WalletError } from '../src/client/mod.js';
import type { TransferResult } from '../src/client/mod.js';
import { AMOUNT_MAX } from '../src/core/money.js';
import { RECORD_BYTES, writeTransferRecord } from '../src/core/transfer-record.js';
import { openLedger } from '../src/engine/ledger.js';
import type { Ledger, TransferBatch } from '../src/engine/types.js';
import { ProtocolHost, startProtocolServer } from '../src/protocol/server.js';
import type { ProtocolServer } from '../src/protocol/server.js';
import { createMemoryTransportPair } from '../src/protocol/transport-memory.js';
import type { MemoryTransport } from '../src/protocol/transport-memory.js';
import { tempDir, transfer, withSubmit } from './support/ledger.js';

const TOKENS: Record<string, Principal> = {
  'admin-token': { kind: 'admin' },
  'alice-key': { kind: 'owner', owner: 'alice' },
};
const authenticate = (token: string): Principal | undefined => TOKENS[token];

/** The real ledger, with every batch that reaches it recorded (count) and an optional hook. */
function recording(ledger: Ledger): { ledger: Ledger; batches: number[]; onSubmit: (hook: ((batch: TransferBatch) => void) | undefined) => void } {
  const batches: number[] = [];
  let hook: ((batch: TransferBatch) => void) | undefined;
  const wrapped = withSubmit(ledger, (batch) => {
    batches.push(batch.count);
    const submitted = ledger.submitTransfers(batch);
    hook?.(batch);
    return submitted;
  });
  return { ledger: wrapped, batches, onSubmit: (next) => (hook = next) };
}

/** Forwards TCP both ways; on its first connection, cuts everything once the server answers a frame. */
async function cuttingProxy(targetPort: number): Promise<{ port: number; connections: () => number; close: () => void }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((downstream) => {
    connections += 1;
    const cutFirstAnswer = connections === 1;
    const upstream = net.connect({ port: targetPort, host: '127.0.0.1' });
    for (const socket of [downstream, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        sockets.delete(socket);
        downstream.destroy();
        upstream.destroy();
      });
    }
    let answeredBytes = 0;
    downstream.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      answeredBytes += chunk.length;
      // The first 16 bytes are the handshake reply; anything after is the answer to a request
      // the server has already applied. Drop it and the connection.
      if (cutFirstAnswer && answeredBytes > 16) {
        downstream.destroy();
        upstream.destroy();
        return;
      }
      downstream.write(chunk);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const address = proxy.address() as net.AddressInfo;
  return {
    port: address.port,
    connections: () => connections,
    close: () => {
      proxy.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

describe('client SDK', () => {
  const dir = tempDir('walletd-client-');
  let ledger: Ledger;
  let probe: ReturnType<typeof recording>;
  let server: ProtocolServer;
  let admin: WalletClient;
  let txCounter = 0;
  const nextTx = (): string => `client-tx-${++txCounter}`;
  const usd = (amount: string): { amount: string; currency: string } => ({ amount, currency: 'USD' });

  before(async () => {
    ledger = await openLedger({ dataDir: dir.path, fsync: false });
    probe = recording(ledger);
    server = await startProtocolServer({ ledger: probe.ledger, authenticate, port: 0 });
    admin = await WalletClient.connect({ port: server.port, token: 'admin-token' });
    for (const [accountId, owner] of [['alice', 'alice'], ['bob', 'bob'], ['carol', undefined]] as const) {
      const opened = await admin.openAccount({ accountId, currency: 'USD', ...(owner === undefined ? {} : { owner }) });
      assert.equal(opened.ok && opened.created, true);
    }
    assert.deepEqual(await admin.deposit({ transactionId: 'fund-alice', accountId: 'alice', ...usd('10000.00') }), { ok: true, sequence: ledger.stats().headSequence });
  });

  after(async () => {
    await admin.close();
    await server.close();
    await ledger.close();
    dir.remove();
  });

  describe('typed calls', () => {
    it('opens accounts idempotently and reports conflicts', async () => {
      const again = await admin.openAccount({ accountId: 'alice', currency: 'USD', owner: 'alice' });
      assert.ok(again.ok);
      assert.equal(again.created, false);
      assert.equal(again.account.balance, '10000.00');
      assert.deepEqual(await admin.openAccount({ accountId: 'alice', currency: 'EUR' }), { ok: false, code: 'account_exists' });
    });

    it('transfers, withdraws, and reads back accounts and transfer outcomes', async () => {
      const id = nextTx();
      const sent = await admin.transfer({ transactionId: id, fromAccount: 'alice', toAccount: 'bob', ...usd('12.34') });
      assert.ok(sent.ok);
      const poor = await admin.withdraw({ transactionId: nextTx(), accountId: 'carol', ...usd('1.00') });
      assert.deepEqual(poor.ok ? undefined : poor.code, 'insufficient_funds');
      assert.ok(poor.sequence > sent.sequence, 'a logged rejection has its own sequence');

      const bob = await admin.account('bob');
      assert.ok(bob.ok);
      assert.deepEqual([bob.account.balance, bob.account.balanceMinor, bob.account.owner], ['12.34', 1234n, 'bob']);
      const status = await admin.transferStatus(id);
      assert.ok(status.ok);
      assert.deepEqual(
        { ...status.transfer, atMs: 0 },
        { transactionId: id, kind: 'transfer', fromAccount: 'alice', toAccount: 'bob', amount: '12.34', amountMinor: 1234n, currency: 'USD', status: 'success', code: 'ok', sequence: sent.sequence, atMs: 0 },
      );
      const funding = await admin.transferStatus('fund-alice');
      assert.deepEqual(funding.ok && [funding.transfer.kind, funding.transfer.fromAccount], ['deposit', '@external:USD']);
      assert.deepEqual(await admin.transferStatus('never-sent'), { ok: false, code: 'transfer_not_found' });
      assert.deepEqual(await admin.account('nobody'), { ok: false, code: 'account_not_found' });
    });

    it('answers malformed arguments locally, with the HTTP API codes', async () => {
      const batchesBefore = probe.batches.length;
      const base = { transactionId: nextTx(), fromAccount: 'alice', toAccount: 'bob' };
      assert.deepEqual(await admin.transfer({ ...base, ...usd('1.001') }), { ok: false, code: 'invalid_amount', sequence: 0 });
      assert.deepEqual(await admin.transfer({ ...base, amount: '0', currency: 'USD' }), { ok: false, code: 'invalid_amount', sequence: 0 });
      assert.deepEqual(await admin.transfer({ ...base, amount: -5n, currency: 'USD' }), { ok: false, code: 'invalid_amount', sequence: 0 });
      assert.deepEqual(await admin.transfer({ ...base, amount: 0n, currency: 'USD' }), { ok: false, code: 'invalid_amount', sequence: 0 });
      assert.deepEqual(await admin.transfer({ ...base, amount: AMOUNT_MAX + 1n, currency: 'USD' }), { ok: false, code: 'invalid_amount', sequence: 0 });
      assert.deepEqual(await admin.transfer({ ...base, amount: '92233720368547758.08', currency: 'USD' }), { ok: false, code: 'invalid_amount', sequence: 0 });
      assert.deepEqual(await admin.transfer({ ...base, amount: '1', currency: 'usd' }), { ok: false, code: 'unsupported_currency', sequence: 0 });
      assert.deepEqual(await admin.transfer({ ...base, fromAccount: 'bad id!', ...usd('1') }), { ok: false, code: 'invalid_request', sequence: 0 });
      assert.deepEqual(await admin.account('x'.repeat(65)), { ok: false, code: 'invalid_request' });
      assert.equal(probe.batches.length, batchesBefore);
    });
  });

  describe('batching', () => {
    it('coalesces concurrent calls into shared frames of at most 8,190 records', async () => {
      const batchesBefore = probe.batches.length;
      const calls = 20_000;
      const results = await Promise.all(
        Array.from({ length: calls }, () => admin.transfer({ transactionId: nextTx(), fromAccount: 'alice', toAccount: 'carol', amount: 1n, currency: 'USD' })),
      );
      assert.ok(results.every((result) => result.ok));
      const sequences = results.map((result) => result.sequence);
      assert.equal(new Set(sequences).size, calls);
      const batches = probe.batches.slice(batchesBefore);
      assert.equal(batches.reduce((sum, count) => sum + count, 0), calls);
      assert.ok(batches.length <= 4, `20,000 calls took ${batches.length} frames`);
      assert.ok(Math.max(...batches) <= 8190);
      const carol = await admin.account('carol');
      assert.equal(carol.ok && carol.account.balanceMinor, 20_000n);
    });

    it('sends prebuilt records with submitBatch', async () => {
      const count = 8190;
      const records = Buffer.alloc(count * RECORD_BYTES);
      const first = txCounter + 1;
      for (let index = 0; index < count; index++) writeTransferRecord(records, index, transfer(nextTx(), 'carol', 'bob', 1n));
      const results = await admin.submitBatch(records, count);
      assert.equal(results.codes.length, count);
      // carol holds 20,000 minor units from the batching test: every record succeeds.
      assert.ok(results.codes.every((code) => code === 0));
      assert.equal((await ledger.transfer(`client-tx-${first}`))?.sequence, results.sequences[0]);
    });
  });

  it('answers overloaded beyond queuedRecordsMax, without sending those calls', async () => {
    const client = await WalletClient.connect({ port: server.port, token: 'admin-token', queuedRecordsMax: 5 });
    const ids = Array.from({ length: 8 }, () => nextTx());
    const results = await Promise.all(ids.map((transactionId) => client.transfer({ transactionId, fromAccount: 'alice', toAccount: 'bob', amount: 1n, currency: 'USD' })));
    assert.deepEqual(results.map((result) => (result.ok ? 'ok' : result.code)), ['ok', 'ok', 'ok', 'ok', 'ok', 'overloaded', 'overloaded', 'overloaded']);
    assert.equal(await ledger.transfer(ids[5] ?? ''), undefined);
    await client.close();
  });

  it('counts lookups toward queuedRecordsMax, sharing the bound with transfers', async () => {
    const client = await WalletClient.connect({ port: server.port, token: 'admin-token', queuedRecordsMax: 5 });
    const transactionId = nextTx();
    const transfer = client.transfer({ transactionId, fromAccount: 'alice', toAccount: 'bob', amount: 1n, currency: 'USD' });
    const lookups = await Promise.all(Array.from({ length: 6 }, () => client.account('alice')));
    assert.deepEqual(lookups.map((result) => (result.ok ? 'found' : result.code)), ['found', 'found', 'found', 'found', 'overloaded', 'overloaded']);
    assert.equal((await transfer).ok, true);
    await client.close();
  });

  it('refuses option values with no bound before dialling: NaN, negative, fractional, forever', async () => {
    let dialled = 0;
    const dial = async (): Promise<never> => {
      dialled++;
      throw new Error('must not dial');
    };
    for (const bad of [{ connectTimeoutMs: Number.NaN }, { reconnectTimeMsMax: Infinity }, { reconnectTimeMsMax: -1 }, { connectTimeoutMs: 2 ** 31 }, { framesInFlightMax: 1.5 }, { queuedRecordsMax: 0 }]) {
      await assert.rejects(WalletClient.connect({ port: server.port, token: 'admin-token', dial, ...bad }), /must be/, JSON.stringify(bad));
    }
    assert.equal(dialled, 0);
  });

  describe('authentication', () => {
    it('rejects an unknown token', async () => {
      await assert.rejects(WalletClient.connect({ port: server.port, token: 'wrong' }), (error: unknown) => error instanceof WalletError && error.code === 'unauthorized');
    });

    it('keeps an owner key to its own accounts', async () => {
      const alice = await WalletClient.connect({ port: server.port, token: 'alice-key' });
      assert.equal(alice.principal, 'owner');
      const bobBefore = ledger.account('bob')?.balance;
      const [own, foreign, money] = await Promise.all([
        alice.transfer({ transactionId: nextTx(), fromAccount: 'alice', toAccount: 'bob', ...usd('1.00') }),
        alice.transfer({ transactionId: nextTx(), fromAccount: 'bob', toAccount: 'alice', ...usd('1.00') }),
        alice.deposit({ transactionId: nextTx(), accountId: 'alice', ...usd('1.00') }),
      ]);
      assert.ok(own.ok);
      assert.deepEqual([foreign, money], [
        { ok: false, code: 'forbidden', sequence: 0 },
        { ok: false, code: 'forbidden', sequence: 0 },
      ]);
      assert.equal(ledger.account('bob')?.balance, (bobBefore ?? 0n) + 100n);
      assert.deepEqual(await alice.account('bob'), { ok: false, code: 'forbidden' });
      assert.ok((await alice.account('alice')).ok);
      await alice.close();
    });
  });

  describe('closing and retries', () => {
    it('close() answers what is queued, later calls get shutting_down', async () => {
      const client = await WalletClient.connect({ port: server.port, token: 'admin-token' });
      const pending = client.transfer({ transactionId: nextTx(), fromAccount: 'alice', toAccount: 'bob', amount: 1n, currency: 'USD' });
      await client.close();
      assert.ok((await pending).ok);
      assert.deepEqual(await client.account('alice'), { ok: false, code: 'shutting_down' });
    });

    it('retries after a TCP connection is cut before the answer, and applies nothing twice', async () => {
      const proxy = await cuttingProxy(server.port);
      const client = await WalletClient.connect({ port: proxy.port, token: 'admin-token' });
      const headBefore = ledger.stats().headSequence;
      const bobBefore = ledger.account('bob')?.balance ?? 0n;
      const ids = Array.from({ length: 50 }, () => nextTx());
      const results = await Promise.all(ids.map((transactionId) => client.transfer({ transactionId, fromAccount: 'alice', toAccount: 'bob', amount: 1n, currency: 'USD' })));
      assert.ok(proxy.connections() >= 2, 'the client did not reconnect');
      await assertAppliedOnce(ids, results, headBefore, bobBefore);
      await client.close();
      proxy.close();
    });

    it('retries over the in-memory transport when cut right after the engine took the batch', async () => {
      const host = new ProtocolHost({ ledger: probe.ledger, authenticate });
      const clientEnds: MemoryTransport[] = [];
      const dial = async (): Promise<MemoryTransport> => {
        const pair = createMemoryTransportPair();
        host.accept(pair.server);
        clientEnds.push(pair.client);
        return pair.client;
      };
      const client = await WalletClient.connect({ port: 0, token: 'admin-token', dial });
      // Cut the first connection at the moment its batch reaches the engine.
      probe.onSubmit(() => {
        probe.onSubmit(undefined);
        clientEnds[0]?.destroy();
      });
      const headBefore = ledger.stats().headSequence;
      const bobBefore = ledger.account('bob')?.balance ?? 0n;
      const ids = Array.from({ length: 10 }, () => nextTx());
      const results = await Promise.all(ids.map((transactionId) => client.transfer({ transactionId, fromAccount: 'alice', toAccount: 'bob', amount: 1n, currency: 'USD' })));
      assert.equal(clientEnds.length, 2);
      await assertAppliedOnce(ids, results, headBefore, bobBefore);
      await client.close();
      await host.close();
    });

    it('gives up after reconnectTimeMsMax with request_timeout', async () => {
      const lonely = await startProtocolServer({ ledger: probe.ledger, authenticate, port: 0 });
      const client = await WalletClient.connect({ port: lonely.port, token: 'admin-token', reconnectTimeMsMax: 200 });
      await lonely.close();
      const result = await client.transfer({ transactionId: nextTx(), fromAccount: 'alice', toAccount: 'bob', amount: 1n, currency: 'USD' });
      assert.deepEqual(result, { ok: false, code: 'request_timeout', sequence: 0 });
      await client.close();
    });

    /** Each id logged once, with the sequence its caller got; bob credited once per id. */
    async function assertAppliedOnce(ids: readonly string[], results: readonly TransferResult[], headBefore: number, bobBefore: bigint): Promise<void> {
      assert.ok(results.every((result) => result.ok), JSON.stringify(results.filter((result) => !result.ok)));
      for (const [index, id] of ids.entries()) assert.equal((await ledger.transfer(id))?.sequence, results[index]?.sequence);
      assert.equal(ledger.account('bob')?.balance, bobBefore + BigInt(ids.length));
      assert.equal(ledger.stats().headSequence, headBefore + ids.length);
    }
  });
});
