/**
 * End-to-end engine checks on a real data directory: accounts, deposits, transfers,
 * rejections, idempotent retries, history reads, restart from snapshot + log with the same digest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Wire } from '../src/core/errors.js';
import { spawnSync } from 'node:child_process';
import { stateDigest } from '../src/core/digest.js';
import { TXN_TABLE_ENTRIES_MAX } from '../src/core/txn-table.js';
import { openLedger } from '../src/engine/ledger.js';
import { recover } from '../src/engine/recovery.js';
import { loadSnapshot } from '../src/engine/snapshot.js';
import { mayDebit } from '../src/auth/access.js';
import { encodeTransferBatch, RECORD_OFFSET_FROM } from '../src/core/transfer-record.js';
import { deposit, newestSnapshot, runWalletd, submit, tempDir, transfer, turn, withdrawal, withLedger, withTempLedger } from './support/ledger.js';

test('deposit, transfer, reject, retry, and restart with the same digest', async () => {
  const dir = tempDir();
  try {
    let digest = '';
    await withLedger(dir.path, async (ledger) => {
      assert.equal((await ledger.openAccount({ accountId: 'alice', currencyCode: 'USD', owner: 'u1' })).status, 'created');
      assert.equal((await ledger.openAccount({ accountId: 'bob', currencyCode: 'USD', owner: 'u2' })).status, 'created');
      assert.equal((await ledger.openAccount({ accountId: 'bob', currencyCode: 'USD', owner: 'u2' })).status, 'exists');
      const rejected = await ledger.openAccount({ accountId: 'bob', currencyCode: 'EUR', owner: 'u2' });
      assert.deepEqual(rejected, { status: 'rejected', code: 'account_exists' });
      const results = await submit(ledger, [
        deposit('d1', 'alice', 10_000n),
        transfer('t1', 'alice', 'bob', 2_500n),
        transfer('t2', 'alice', 'bob', 1_000_000n),
        transfer('t3', 'alice', 'alice', 1n),
        transfer('t4', 'alice', 'nobody', 1n),
        withdrawal('w1', 'bob', 500n),
        transfer('t1', 'alice', 'bob', 2_500n),
        transfer('t1', 'alice', 'bob', 2_501n),
      ]);
      assert.deepEqual([...results.codes], [Wire.ok, Wire.ok, Wire.insufficient_funds, Wire.same_account, Wire.account_not_found, Wire.ok, Wire.ok, Wire.idempotency_conflict]);
      assert.equal(results.sequences[6], results.sequences[1]);
      assert.equal(results.sequences[7], 0);
      assert.equal(ledger.account('alice')?.balance, 7_500n);
      assert.equal(ledger.account('bob')?.balance, 2_000n);
      assert.equal(ledger.account('@external:USD')?.balance, -9_500n);
      const view = await ledger.transfer('t4');
      assert.equal(view?.code, 'account_not_found');
      assert.equal(view?.toAccount, 'nobody');
      const statement = await ledger.statement('alice', 10);
      assert.deepEqual(statement?.entries.map((entry) => [entry.transactionId, entry.direction, entry.balanceAfter]), [
        ['t1', 'debit', 7_500n],
        ['d1', 'credit', 10_000n],
      ]);
      const past = await ledger.balanceAt('alice', { sequence: results.sequences[0]! });
      assert.equal(past.status === 'ok' && past.balance, 10_000n);
      digest = ledger.digest();
    });
    await withLedger(dir.path, async (ledger) => {
      assert.equal(ledger.digest(), digest);
      assert.equal(ledger.account('bob')?.balance, 2_000n);
      const retry = await submit(ledger, [transfer('t2', 'alice', 'bob', 1_000_000n)]);
      assert.equal(retry.codes[0], Wire.insufficient_funds);
    });
  } finally {
    dir.remove();
  }
});

test('the offline commands answer --help with their usage and exit 0; a bad option is exit 2', () => {
  for (const command of ['verify', 'replay', 'balance', 'snapshot']) {
    for (const flag of ['--help', '-h']) {
      const run = runWalletd([command, flag]);
      assert.equal(run.status, 0, `${command} ${flag}: ${run.stderr}`);
      assert.match(run.stdout, /Offline commands/);
      assert.match(run.stdout, new RegExp(`walletd ${command} `));
    }
    const bad = runWalletd([command, '--bogus']);
    assert.equal(bad.status, 2, `${command} --bogus`);
    assert.match(bad.stderr, /Unknown option '--bogus'/);
  }
  // After `--`, "--help" is an account id: balance looks for it (and finds no data directory here).
  const named = runWalletd(['balance', '--data-dir', '/nonexistent-walletd-dir', '--', '--help']);
  assert.equal(named.status, 2);
  assert.match(named.stderr, /no walletd data directory/);
});

test('restart without a snapshot replays the log to the same digest', async () => {
  const dir = tempDir();
  try {
    // A child process writes and exits without close(): no final snapshot, as after a crash.
    const script = `
      const { openLedger } = await import(${JSON.stringify(new URL('../src/engine/ledger.js', import.meta.url).href)});
      const { encodeTransferBatch } = await import(${JSON.stringify(new URL('../src/core/transfer-record.js', import.meta.url).href)});
      const ledger = await openLedger({ dataDir: ${JSON.stringify(dir.path)} });
      await ledger.openAccount({ accountId: 'a', currencyCode: 'JPY', owner: 'a' });
      await ledger.submitTransfers({ bytes: encodeTransferBatch([{ kind: 'deposit', transactionId: 'x1', fromAccount: '', toAccount: 'a', amountMinor: 1500n, currencyNumeric: 392 }]), count: 1 });
      process.stdout.write(ledger.digest());
      process.exit(0);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    const again = await openLedger({ dataDir: dir.path, fsync: false });
    assert.equal(again.digest(), child.stdout);
    assert.equal(again.account('a')?.balance, 1500n);
    await assert.rejects(openLedger({ dataDir: dir.path }), /in use by process/);
    await again.close();
  } finally {
    dir.remove();
  }
});

test('owner queries: an owner key debits its own accounts only, externals belong to no owner', async () => {
  const dir = tempDir();
  try {
    await withLedger(dir.path, async (ledger) => {
      // 'alice' and 'savings' are owned by 'u1' (an interned owner); 'bob' owns itself.
      await ledger.openAccount({ accountId: 'alice', currencyCode: 'USD', owner: 'u1' });
      await ledger.openAccount({ accountId: 'savings', currencyCode: 'USD', owner: 'u1' });
      await ledger.openAccount({ accountId: 'bob', currencyCode: 'USD', owner: 'bob' });
      await ledger.openAccount({ accountId: 'bobs-kid', currencyCode: 'USD', owner: 'bob' });
      assert.equal((await submit(ledger, [deposit('d1', 'alice', 100n)])).codes[0], Wire.ok);

      assert.equal(ledger.ownerOf('alice'), 'u1');
      assert.equal(ledger.ownerOf('bob'), 'bob');
      assert.equal(ledger.ownerOf('bobs-kid'), 'bob');
      assert.equal(ledger.ownerOf('nobody'), undefined);
      assert.equal(ledger.ownerOf('@external:USD'), undefined);
      assert.equal(ledger.hasAccount('alice'), true);
      assert.equal(ledger.hasAccount('@external:USD'), true);
      assert.equal(ledger.hasAccount('nobody'), false);

      const u1 = { kind: 'owner', owner: 'u1' } as const;
      assert.equal(mayDebit(u1, ledger, 'alice'), true);
      assert.equal(mayDebit(u1, ledger, 'savings'), true);
      assert.equal(mayDebit(u1, ledger, 'bob'), false);
      assert.equal(mayDebit(u1, ledger, 'nobody'), false);
      assert.equal(mayDebit(u1, ledger, '@external:USD'), false);
      assert.equal(mayDebit({ kind: 'admin' }, ledger, 'bob'), true);

      // The binary protocol's check: id fields read from records, at an odd offset on purpose.
      const owns = (owner: string, accountId: string): boolean => {
        const record = encodeTransferBatch([transfer('t', accountId, 'x', 1n)]);
        const shifted = Buffer.alloc(record.length + 1);
        record.copy(shifted, 1);
        return ledger.accountsOwnedBy(owner).includesIdField(shifted, 1 + RECORD_OFFSET_FROM);
      };
      assert.equal(owns('u1', 'alice'), true);
      assert.equal(owns('u1', 'savings'), true);
      assert.equal(owns('u1', 'bob'), false);
      assert.equal(owns('u1', 'nobody'), false);
      assert.equal(owns('bob', 'bob'), true);
      assert.equal(owns('bob', 'bobs-kid'), true);
      assert.equal(owns('bob', 'alice'), false);
      assert.equal(owns('u1', 'u1'), false, 'an owner id is not an account');
      assert.equal(owns('nobody', 'alice'), false);
      assert.equal(owns('@system', '@external:USD'), false);
      assert.equal(ledger.accountsOwnedBy('u1').includesIdField(Buffer.alloc(64), 0), false, 'an empty id field');
    });
  } finally {
    dir.remove();
  }
});

test('a snapshot that scans the transaction table while transfers go on holds the state of the moment it was asked for', async () => {
  const dir = tempDir();
  try {
    await withLedger(
      dir.path,
      async (ledger) => {
        await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'u1' });
        await submit(ledger, Array.from({ length: 1000 }, (_, index) => deposit(`before-${index}`, 'a', 1n)));
        const head = ledger.stats().headSequence;
        const digest = ledger.digest();
        let snapshotDone = false;
        const snapshot = ledger.snapshot().then(() => (snapshotDone = true));
        // Submitted after the snapshot was asked for: decided only once its capture is taken, and
        // while its worker (started only then) reads the table.
        const during = await Promise.all(
          Array.from({ length: 20 }, async (_, batch) => {
            const results = await submit(ledger, Array.from({ length: 10 }, (_, index) => deposit(`during-${batch}-${index}`, 'a', 1n)));
            assert.ok(results.codes.every((code) => code === Wire.ok));
            return snapshotDone;
          }),
        );
        await snapshot;
        assert.ok(during.some((done) => !done), 'no transfer was decided while the snapshot ran');
        const newest = newestSnapshot(dir.path);
        assert.equal(newest.sequence, head);
        const loaded = loadSnapshot(newest.path);
        assert.equal(stateDigest(loaded.state), digest);
        assert.equal(loaded.meta.digest, digest);
        assert.equal(loaded.state.txns.count, 1000);
        assert.equal(stateDigest(recover(dir.path).state), ledger.digest(), 'snapshot + log tail gives the live state');
      },
      // No journal at this interval: the snapshot scans the table.
      { snapshotEveryRecords: Number.MAX_SAFE_INTEGER },
    );
  } finally {
    dir.remove();
  }
});

test('numeric options out of range are refused before the data directory is touched', async () => {
  const dir = tempDir();
  try {
    for (const options of [{ snapshotPiecesInFlight: 0 }, { queueRecordsMax: Number.NaN }, { snapshotEveryRecords: 1.5 }, { segmentBytesMax: -1 }, { expectedTransactions: -1 }, { expectedTransactions: TXN_TABLE_ENTRIES_MAX + 1 }, { prepareInWorkerMinRecords: 0 }]) {
      const [name] = Object.keys(options);
      await assert.rejects(openLedger({ dataDir: dir.path, ...options }), new RegExp(`${name} must be an integer`));
    }
    await withLedger(dir.path, async (ledger) => assert.equal(ledger.stats().headSequence, 0), { snapshotPiecesInFlight: 1, expectedTransactions: 0 });
  } finally {
    dir.remove();
  }
});

test('log backlog bound: above logBacklogBytesMax the engine waits for the group commit before deciding more', async () => {
  // A 1-byte bound: no frame may be decided while another awaits its fsync, so every group
  // commit carries exactly one frame. Without the bound, concurrent submits put several frames
  // in one group (the writer batches what queues while an fsync runs).
  const frameCounts = (logBacklogBytesMax?: number) => {
    const dir = tempDir('walletd-backlog-');
    const groups: number[] = [];
    return withLedger(
      dir.path,
      async (ledger) => {
        await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
        await ledger.openAccount({ accountId: 'b', currencyCode: 'USD', owner: 'b' });
        await submit(ledger, [deposit('fund', 'a', 1_000_000n)]);
        // One submit per event-loop turn: each turn's drain makes a frame while earlier ones sync.
        const batches: Array<ReturnType<typeof submit>> = [];
        for (let i = 0; i < 200; i++) {
          batches.push(submit(ledger, [transfer(`t-${i}`, 'a', 'b', 1n)]));
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        const results = await Promise.all(batches);
        assert.ok(results.every((result) => result.codes[0] === Wire.ok), 'every transfer applied');
        return groups;
      },
      { fsync: true, ...(logBacklogBytesMax === undefined ? {} : { logBacklogBytesMax }), observer: { onFlush: (info) => groups.push(info.frames) } },
    ).finally(() => dir.remove());
  };
  const bounded = await frameCounts(1);
  assert.ok(bounded.length > 0);
  assert.ok(bounded.every((frames) => frames === 1), `one frame per group commit under a 1-byte bound: ${bounded.join(',')}`);
  const unbounded = await frameCounts();
  assert.ok(unbounded.some((frames) => frames > 1), `several frames per group without the bound: ${unbounded.join(',')}`);
});

test('reads show only durable state: views, openings, balances and statements read during an fsync are answered once durable', async () => {
  await withTempLedger(
    async (ledger) => {
      await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
      await submit(ledger, [deposit('d0', 'a', 1_000n)]);
      let racing = 0;
      for (let round = 0; round < 40; round++) {
        // Queue a deposit and a new account, let the engine decide them, and read before their fsync returns.
        const pending = submit(ledger, [deposit(`d${round + 1}`, 'a', 1n)]);
        const opening = ledger.openAccount({ accountId: `n${round}`, currencyCode: 'USD', owner: 'n' });
        await turn();
        await turn();
        const headAtRead = ledger.stats().headSequence;
        if (headAtRead > ledger.stats().durableSequence) racing++;
        // Each read records the durable position at the moment it settles: that is what it may show.
        const settled = <T>(read: Promise<T>): Promise<{ value: T; durable: number }> => read.then((value) => ({ value, durable: ledger.stats().durableSequence }));
        const reads = {
          view: settled(ledger.durableAccount('a')),
          opened: settled(ledger.durableAccount(`n${round}`)),
          openedStatement: settled(ledger.statement(`n${round}`, 2)),
          now: settled(ledger.balanceAt('a', {})),
          atSequence: settled(ledger.balanceAt('a', { sequence: headAtRead })),
          atTime: settled(ledger.balanceAt('a', { atMs: Date.now() + 60_000 })),
          statement: settled(ledger.statement('a', 2)),
          pastCursor: settled(ledger.statement('a', 2, 1e12)),
        };
        // A large batch (its frame over 64 KiB, written on the thread pool) is decided while those reads wait.
        const later = submit(ledger, Array.from({ length: 2000 }, (_, index) => deposit(`late${round}-${index}`, 'a', 1n)));
        const view = await reads.view;
        assert.ok(view.value !== undefined && view.durable >= view.value.sequence, `round ${round}: a view answered before ${view.value?.sequence} was durable`);
        const opened = await reads.opened;
        assert.ok(opened.value !== undefined && opened.durable >= headAtRead, `round ${round}: a new account answered before its opening was durable`);
        const openedStatement = await reads.openedStatement;
        assert.ok(openedStatement.value !== undefined && openedStatement.durable >= headAtRead, `round ${round}: a new account's statement answered before its opening was durable`);
        const { value: now, durable: nowDurable } = await reads.now;
        const { value: atSequence, durable: atSequenceDurable } = await reads.atSequence;
        const { value: atTime, durable: atTimeDurable } = await reads.atTime;
        const statementRead = await reads.statement;
        const statement = statementRead.value!;
        const pastCursor = (await reads.pastCursor).value!;
        assert.ok(now.status === 'ok' && now.sequence <= nowDurable && now.sequence === headAtRead, `round ${round}: now`);
        assert.ok(atSequence.status === 'ok' && atSequence.sequence <= atSequenceDurable, `round ${round}: at a sequence`);
        assert.ok(atTime.status === 'ok' && atTime.sequence <= headAtRead && atTime.sequence <= atTimeDurable, `round ${round}: a time query found an entry decided after the read`);
        assert.ok(statement.entries[0]!.sequence <= headAtRead && statement.entries[0]!.sequence <= statementRead.durable, `round ${round}: statement`);
        assert.equal(pastCursor.entries[0]!.sequence, statement.entries[0]!.sequence, `round ${round}: a cursor past the newest entry starts at it`);
        // Each balance answered is the one at the position it names.
        for (const answer of [now, atSequence, atTime]) {
          assert.ok(answer.status === 'ok');
          const at = await ledger.balanceAt('a', { sequence: answer.sequence });
          assert.deepEqual(at.status === 'ok' ? at.balance : undefined, answer.balance, `round ${round}: balance at ${answer.sequence}`);
        }
        const openedAnswer = await settled(opening);
        assert.ok(openedAnswer.value.status === 'created' && openedAnswer.value.account.sequence <= openedAnswer.durable, `round ${round}: opening answered with a later view`);
        await pending;
        await later;
      }
      assert.ok(racing > 0, 'no read ever raced an fsync: the test did not exercise the window');
    },
    { fsync: true },
  );
});
