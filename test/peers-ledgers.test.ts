/**
 * The peer ledgers of the benchmark (PostgreSQL, Redis Lua wallet, and Redis with an fsynced
 * append-only file on a private server) against the real servers: the same contract for each.
 * Money moves correctly, the sum of balances never changes, insufficient funds and the other
 * rejections leave balances alone, a duplicate transaction id moves money once (also when the
 * duplicates race), and many concurrent transfers end in exactly the balances their outcomes
 * imply. Each ledger works in its own schema or key prefix and removes it at the end.
 * Skipped (loudly) without the servers; failing instead when WALLETD_REQUIRE_SERVICES=1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Wire } from '../src/core/errors.js';
import { Prng } from '../src/stdx/prng.js';
import { PostgresLedger } from '../src/bench/peers/postgres-ledger.js';
import { RedisWallet } from '../src/bench/peers/redis-wallet.js';
import { startRedisServer, type RedisServerHandle } from '../src/bench/peers/redis-server.js';
import type { PeerLedger, PeerTransfer } from '../src/bench/peers/peer-ledger.js';
import { RespPipe } from '../src/bench/peers/resp-pipe.js';
import { postgresUrl, requireService } from './support/services.js';

const USD = 840;
const EUR = 978;
const postgres = await requireService('postgres');
const redis = await requireService('redis');

type Opened = { ledger: PeerLedger; dispose: () => Promise<void> };
type Peer = { name: string; skip: false | string; open: () => Promise<Opened> };

const tag = randomBytes(4).toString('hex');
const peers: Peer[] = [
  {
    name: 'postgres',
    skip: postgres.skip,
    open: async () => {
      const ledger = await PostgresLedger.open({ connectionString: postgresUrl(), schema: `peers_test_${tag}`, clients: 4, durable: true });
      return { ledger, dispose: () => ledger.close() };
    },
  },
  {
    name: 'redis',
    skip: redis.skip,
    open: async () => {
      const ledger = await RedisWallet.open({ host: '127.0.0.1', port: 6379, keyPrefix: `peers-test:${tag}:`, connections: 2 });
      return { ledger, dispose: () => ledger.close() };
    },
  },
  {
    // The durable comparison's private server; it needs the redis-server program, not port 6379.
    name: 'redis appendfsync always',
    skip: redis.skip,
    open: async () => {
      const server = await startRedisServer({ appendFsync: 'always' });
      try {
        const ledger = await RedisWallet.open({ host: server.host, port: server.port, keyPrefix: `peers-test:${tag}:`, connections: 2 });
        assert.match(ledger.durability, /appendfsync always/);
        return { ledger, dispose: () => closeThenStop(ledger, server) };
      } catch (error) {
        await server.stop();
        throw error;
      }
    },
  },
];

async function closeThenStop(ledger: PeerLedger, server: RedisServerHandle): Promise<void> {
  await ledger.close();
  await server.stop();
  assert.equal(existsSync(server.dataDir), false, 'the private server removes its data directory');
  assert.throws(() => process.kill(server.pid, 0), 'the private server has exited');
}

function transfer(transactionId: string, fromAccount: string, toAccount: string, amountMinor: bigint, currencyNumeric = USD): PeerTransfer {
  return { transactionId, fromAccount, toAccount, amountMinor, currencyNumeric };
}

async function balancesOf(ledger: PeerLedger, ids: readonly string[]): Promise<bigint[]> {
  const found = await ledger.balances(ids);
  return ids.map((id) => {
    const balance = found.get(id);
    assert.notEqual(balance, undefined, `account ${id} exists`);
    return balance ?? 0n;
  });
}

function sum(values: readonly bigint[]): bigint {
  return values.reduce((total, value) => total + value, 0n);
}

for (const peer of peers) {
  test(`${peer.name}: moves money, refuses what it must, and stays balanced`, { skip: peer.skip }, async () => {
    const { ledger, dispose } = await peer.open();
    try {
      await ledger.openAccounts(['alice', 'bob', 'carol', 'eve'], USD, [1000n, 1000n, 1000n, 0n]);
      await ledger.openAccounts(['euro'], EUR, [500n]);
      const ids = ['alice', 'bob', 'carol', 'eve'];

      assert.deepEqual([...(await ledger.transfers([transfer('t1', 'alice', 'bob', 300n)]))], [Wire.ok]);
      assert.deepEqual(await balancesOf(ledger, ids), [700n, 1300n, 1000n, 0n]);

      const refused = await ledger.transfers([
        transfer('t2', 'alice', 'carol', 701n), // one more than alice has
        transfer('t3', 'alice', 'alice', 1n),
        transfer('t4', 'alice', 'euro', 1n),
        transfer('t5', 'alice', 'nobody', 1n),
        transfer('t6', 'alice', 'bob', 0n),
        transfer('t7', 'eve', 'bob', 1n), // an empty account
      ]);
      assert.deepEqual(
        [...refused],
        [Wire.insufficient_funds, Wire.same_account, Wire.currency_mismatch, Wire.account_not_found, Wire.invalid_amount, Wire.insufficient_funds],
      );
      assert.deepEqual(await balancesOf(ledger, ids), [700n, 1300n, 1000n, 0n], 'refusals move nothing');

      // Exactly 700 is allowed: the guard is balance >= amount, and zero is a valid balance.
      assert.deepEqual([...(await ledger.transfers([transfer('t8', 'alice', 'eve', 700n)]))], [Wire.ok]);
      assert.deepEqual(await balancesOf(ledger, ids), [0n, 1300n, 1000n, 700n]);
      assert.equal(sum(await balancesOf(ledger, ids)), 3000n);
      assert.deepEqual(await balancesOf(ledger, ['euro']), [500n]);
    } finally {
      await dispose();
    }
  });

  test(`${peer.name}: a duplicate transaction id returns the first outcome and moves money once`, { skip: peer.skip }, async () => {
    const { ledger, dispose } = await peer.open();
    try {
      await ledger.openAccounts(['alice', 'bob'], USD, [100n, 0n]);
      assert.deepEqual([...(await ledger.transfers([transfer('d1', 'alice', 'bob', 60n)]))], [Wire.ok]);
      // A retry of d1 and a second d1 in the same batch: still one move of 60.
      const retried = await ledger.transfers([transfer('d1', 'alice', 'bob', 60n), transfer('d1', 'alice', 'bob', 60n)]);
      assert.deepEqual([...retried], [Wire.ok, Wire.ok]);
      assert.deepEqual(await balancesOf(ledger, ['alice', 'bob']), [40n, 60n]);

      // A rejected id stays rejected, even once the money is there.
      assert.deepEqual([...(await ledger.transfers([transfer('d2', 'bob', 'alice', 61n)]))], [Wire.insufficient_funds]);
      assert.deepEqual([...(await ledger.transfers([transfer('d3', 'alice', 'bob', 40n)]))], [Wire.ok]);
      assert.deepEqual([...(await ledger.transfers([transfer('d2', 'bob', 'alice', 61n)]))], [Wire.insufficient_funds]);
      assert.deepEqual(await balancesOf(ledger, ['alice', 'bob']), [0n, 100n]);

      // Twenty racing copies of one new id, spread over the connections.
      const racing = Array.from({ length: 20 }, () => transfer('d4', 'bob', 'alice', 30n));
      const codes = await Promise.all(racing.map((t, lane) => ledger.transfers([t], lane)));
      assert.ok(codes.every((c) => c[0] === Wire.ok));
      assert.deepEqual(await balancesOf(ledger, ['alice', 'bob']), [30n, 70n]);
    } finally {
      await dispose();
    }
  });

  test(`${peer.name}: concurrent random transfers keep the sum and match their outcomes`, { skip: peer.skip }, async () => {
    const { ledger, dispose } = await peer.open();
    const accounts = 8;
    const ids = Array.from({ length: accounts }, (_, index) => `acct${index}`);
    try {
      await ledger.openAccounts(ids, USD, ids.map(() => 500n));
      const prng = new Prng(4242);
      // Amounts up to 400 against balances of 500 make insufficient funds common. One in ten is
      // a retry: an exact copy of an earlier transfer, id included.
      const transfers: PeerTransfer[] = [];
      for (let index = 0; index < 400; index++) {
        const earlier = transfers[prng.below(Math.max(1, index))];
        if (earlier !== undefined && prng.below(10) === 0) {
          transfers.push(earlier);
          continue;
        }
        const from = prng.below(accounts);
        const to = (from + 1 + prng.below(accounts - 1)) % accounts;
        transfers.push(transfer(`c${index}`, ids[from] ?? '', ids[to] ?? '', BigInt(prng.between(1, 400))));
      }
      const chunks = [0, 1, 2, 3].map((lane) => transfers.filter((_, index) => index % 4 === lane));
      const codes = await Promise.all(chunks.map((chunk, lane) => ledger.transfers(chunk, lane)));

      const outcomes = new Map<string, { transfer: PeerTransfer; code: number }>();
      chunks.forEach((chunk, lane) =>
        chunk.forEach((t, index) => {
          const code = codes[lane]?.[index];
          assert.ok(code === Wire.ok || code === Wire.insufficient_funds, `unexpected code ${code}`);
          const first = outcomes.get(t.transactionId);
          if (first === undefined) outcomes.set(t.transactionId, { transfer: t, code });
          else assert.equal(code, first.code, `every copy of ${t.transactionId} gets the first outcome`);
        }),
      );
      const applied = [...outcomes.values()].filter((outcome) => outcome.code === Wire.ok).map((outcome) => outcome.transfer);
      const expected = new Map(ids.map((id) => [id, 500n]));
      for (const t of applied) {
        expected.set(t.fromAccount, (expected.get(t.fromAccount) ?? 0n) - t.amountMinor);
        expected.set(t.toAccount, (expected.get(t.toAccount) ?? 0n) + t.amountMinor);
      }
      const balances = await balancesOf(ledger, ids);
      assert.equal(sum(balances), 500n * BigInt(accounts), 'money is neither created nor destroyed');
      assert.ok(balances.every((balance) => balance >= 0n), 'no balance below zero');
      assert.deepEqual(balances, ids.map((id) => expected.get(id)), 'each successful id moved its money once');
      assert.ok(applied.length > 50, 'the workload moved money');
      assert.ok(outcomes.size < transfers.length, 'the workload retried some ids');
    } finally {
      await dispose();
    }
  });
}

test('resp pipe: integer replies in order, an error fails its batch, a reply that is no code fails the stream', async () => {
  // A fake server: each write from the pipe is answered with the next scripted reply.
  const replies = [':0\r\n:17\r\n', '-ERR boom\r\n', ':1x\r\n'];
  const server = createServer((socket) => socket.on('data', () => socket.write(replies.shift() ?? '')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const pipe = await RespPipe.connect('127.0.0.1', (server.address() as AddressInfo).port);
  try {
    assert.deepEqual([...(await pipe.send('two', 2))], [0, 17]);
    await assert.rejects(pipe.send('one', 1), /redis: -ERR boom/);
    await assert.rejects(pipe.send('one', 1), /unexpected reply ":1x"/);
    await assert.rejects(pipe.send('one', 1), /unexpected reply/, 'the stream stays failed');
  } finally {
    pipe.close();
    server.close();
  }
});
