// Durability of acknowledged HTTP answers. A real server (fsync on, frequent snapshots) takes
// concurrent single and batch transfers; it is killed with SIGKILL mid-load (no chance to
// flush or snapshot), restarted on the same data directory, and then: every transfer that got
// an answer (200, or a 422 rejection) is found by GET /v1/transfers/{id} with that outcome;
// balances equal the opening deposits plus exactly the transfers the ledger holds (a transfer
// applied twice or lost would break the sum); no statement lists a transaction twice; and a
// retry of an acknowledged transfer returns its original answer. A second run stops the server
// with SIGTERM under load and checks it exits 0, answered in-flight requests, and lost nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WalletServer, balanceOf, deposit, minorOf, openAccount, sleep, uniqueId } from './support/http-server.js';

/** A hung request fails its test instead of stalling the run. */
const TEST_TIMEOUT = { timeout: 60_000 };

const ACCOUNTS = 6;
const OPENING = '1000.00';
const WORKERS = 16;
const BATCH_ITEMS = 10;

type Sent = { from: string; to: string; amountMinor: bigint; body: Record<string, unknown>; single: boolean; answer?: { status: number; text: string } };

async function startLoaded(): Promise<{ server: WalletServer; accounts: string[] }> {
  const server = await WalletServer.start({ args: ['--snapshot-every', '3000'] });
  const accounts = Array.from({ length: ACCOUNTS }, (_, index) => uniqueId(`crash${index}`));
  for (const account of accounts) {
    await openAccount(server, account);
    await deposit(server, account, OPENING);
  }
  return { server, accounts };
}

/** Runs single and batch transfers from WORKERS loops until `stopped()`; records what was answered. */
function runLoad(server: WalletServer, accounts: string[], stopped: () => boolean): { sent: Map<string, Sent>; done: Promise<unknown> } {
  const sent = new Map<string, Sent>();
  const newTransfer = (single: boolean): Sent => {
    const from = accounts[Math.floor(Math.random() * accounts.length)]!;
    let to = accounts[Math.floor(Math.random() * accounts.length)]!;
    if (to === from) to = accounts[(accounts.indexOf(from) + 1) % accounts.length]!;
    const cents = 1 + Math.floor(Math.random() * 100);
    const body = { transaction_id: uniqueId('load'), from_account: from, to_account: to, amount: `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`, currency: 'USD' };
    const item: Sent = { from, to, amountMinor: BigInt(cents), body, single };
    sent.set(body.transaction_id, item);
    return item;
  };
  const worker = async (index: number): Promise<void> => {
    while (!stopped()) {
      try {
        if (index % 4 === 0) {
          const items = Array.from({ length: BATCH_ITEMS }, () => newTransfer(false));
          const reply = await server.call('POST', '/v1/wallet/balance_transfers', { json: { transfers: items.map((item) => item.body) } });
          if (reply.status !== 200) continue;
          reply.body.results.forEach((result: Record<string, unknown>, position: number) => {
            items[position]!.answer = { status: result['status'] === 'success' ? 200 : 422, text: JSON.stringify(result) };
          });
        } else {
          const item = newTransfer(true);
          const reply = await server.call('POST', '/v1/wallet/balance_transfer', { json: item.body });
          if (reply.status === 200 || reply.status === 422) item.answer = { status: reply.status, text: reply.text };
        }
      } catch {
        await sleep(5); // the server is gone: the request has no answer, which the checks allow
      }
    }
  };
  return { sent, done: Promise.all(Array.from({ length: WORKERS }, (_, index) => worker(index))) };
}

/** Checks the restarted ledger against what clients were told. Returns how many were acknowledged. */
async function verifyAfterRestart(server: WalletServer, accounts: string[], sent: Map<string, Sent>): Promise<number> {
  const expected = new Map<string, bigint>(accounts.map((account) => [account, minorOf(OPENING)]));
  let acknowledged = 0;
  const entries = [...sent.entries()];
  for (let start = 0; start < entries.length; start += 64) {
    await Promise.all(
      entries.slice(start, start + 64).map(async ([id, item]) => {
        const view = await server.call('GET', `/v1/transfers/${id}`);
        if (item.answer !== undefined) {
          acknowledged++;
          assert.equal(view.status, 200, `acknowledged ${id} survives the crash`);
          assert.equal(view.body.status, item.answer.status === 200 ? 'success' : 'rejected', `${id} keeps its outcome`);
        } else {
          assert.ok(view.status === 200 || view.status === 404, 'an unanswered transfer is either in the ledger or not');
        }
        if (view.status === 200 && view.body.status === 'success') {
          expected.set(item.from, expected.get(item.from)! - item.amountMinor);
          expected.set(item.to, expected.get(item.to)! + item.amountMinor);
        }
      }),
    );
  }
  for (const account of accounts) {
    assert.equal(minorOf(await balanceOf(server, account)), expected.get(account), `${account}: every logged transfer applied exactly once`);
    await assertNoDuplicateEntries(server, account);
  }
  const total = [...expected.values()].reduce((sum, value) => sum + value, 0n);
  assert.equal(minorOf(await balanceOf(server, '@external:USD')), -total, 'USD sums to zero');
  const retried = [...sent.values()].filter((item) => item.single && item.answer !== undefined).slice(-20);
  assert.ok(retried.length > 0);
  for (const item of retried) {
    const again = await server.call('POST', '/v1/wallet/balance_transfer', { json: item.body });
    assert.equal(again.text, item.answer!.text, 'a retry after the restart gets the original answer');
  }
  return acknowledged;
}

/** Restarts on the stopped server's data directory and checks it against what clients were told. */
async function restartAndVerify(stopped: WalletServer, accounts: string[], sent: Map<string, Sent>, acknowledgedMin: number): Promise<void> {
  const restarted = await WalletServer.start({ dataDir: stopped.dataDir, adminToken: stopped.adminToken });
  try {
    const acknowledged = await verifyAfterRestart(restarted, accounts, sent);
    assert.ok(acknowledged > acknowledgedMin, `load was real: ${acknowledged} acknowledged transfers`);
  } finally {
    await restarted.stop();
    restarted.removeDataDir();
  }
}

async function assertNoDuplicateEntries(server: WalletServer, account: string): Promise<void> {
  const seen = new Set<string>();
  let cursor: string | null = null;
  do {
    const query: string = cursor === null ? '?limit=1000' : `?limit=1000&cursor=${cursor}`;
    const page = await server.call('GET', `/v1/accounts/${account}/transactions${query}`);
    assert.equal(page.status, 200);
    for (const entry of page.body.entries as Array<{ transaction_id: string }>) {
      assert.ok(!seen.has(entry.transaction_id), `${entry.transaction_id} listed twice for ${account}`);
      seen.add(entry.transaction_id);
    }
    cursor = page.body.next_cursor;
  } while (cursor !== null);
}

test('SIGKILL under HTTP load: every acknowledged transfer is present exactly once after restart', TEST_TIMEOUT, async () => {
  const { server, accounts } = await startLoaded();
  let stopped = false;
  const load = runLoad(server, accounts, () => stopped);
  await sleep(1000);
  const killed = await server.stop('SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');
  stopped = true;
  await load.done;

  await restartAndVerify(server, accounts, load.sent, 200);
});

test('SIGTERM under HTTP load: in-flight requests answered, exit 0 within 30 s, nothing lost', TEST_TIMEOUT, async () => {
  const { server, accounts } = await startLoaded();
  let stopped = false;
  const load = runLoad(server, accounts, () => stopped);
  await sleep(600);
  const signalledAt = Date.now();
  const exit = await server.stop('SIGTERM');
  const stopMs = Date.now() - signalledAt;
  stopped = true;
  await load.done;
  assert.equal(exit.code, 0);
  assert.ok(stopMs < 30_000, `stopped in ${stopMs} ms`);
  const messages = server.logs().map((entry) => entry['msg']);
  assert.ok(messages.includes('stopping: no new requests, finishing in-flight ones'));
  assert.ok(messages.includes('stopped: final snapshot written'));
  const snapshots = server.logs().filter((entry) => entry['msg'] === 'snapshot written');
  assert.ok(snapshots.length >= 1, 'the final snapshot is logged');
  const last = snapshots.at(-1)!;
  assert.ok(typeof last['sequence'] === 'number' && last['sequence'] > 0 && typeof last['bytes'] === 'number' && last['bytes'] > 0, JSON.stringify(last));

  await restartAndVerify(server, accounts, load.sent, 100);
});
