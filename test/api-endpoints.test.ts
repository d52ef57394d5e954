// Happy paths of every endpoint of API.md, and idempotency, over real HTTP against a real
// `walletd serve` process (test/support/http-server.ts spawns bin/walletd.js on a fresh data
// directory). Checks exact bodies and status codes, that sequences increase, that retries
// (sequential and many concurrent duplicates) get byte-identical answers and move money once,
// and the read side: transfer lookup, historical balances, statement paging.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WalletServer, balanceOf, deposit, minorOf, openAccount, uniqueId } from './support/http-server.js';

/** A hung request fails its test instead of stalling the run. */
const TEST_TIMEOUT = { timeout: 60_000 };

let server: WalletServer;

before(async () => {
  server = await WalletServer.start();
});

after(async () => {
  const { code } = await server.stop('SIGTERM');
  assert.equal(code, 0, 'graceful stop exits 0');
  server.removeDataDir();
});

test('operations endpoints need no token: healthz, readyz, metrics, openapi.json, docs', TEST_TIMEOUT, async () => {
  const health = await server.call('GET', '/healthz', { token: null });
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { status: 'ok' });
  const ready = await server.call('GET', '/readyz', { token: null });
  assert.equal(ready.status, 200);

  const openapi = await server.call('GET', '/openapi.json', { token: null });
  assert.equal(openapi.status, 200);
  assert.equal(openapi.body.openapi, '3.1.0');
  for (const path of [
    '/v1/accounts',
    '/v1/accounts/{account_id}',
    '/v1/accounts/{account_id}/deposits',
    '/v1/accounts/{account_id}/withdrawals',
    '/v1/accounts/{account_id}/balance',
    '/v1/accounts/{account_id}/transactions',
    '/v1/wallet/balance_transfer',
    '/v1/wallet/balance_transfers',
    '/v1/transfers/{transaction_id}',
    '/v1/api-keys',
    '/healthz',
    '/readyz',
    '/metrics',
  ]) {
    assert.ok(openapi.body.paths[path] !== undefined, `OpenAPI documents ${path}`);
  }
  const transferSchema = openapi.body.paths['/v1/wallet/balance_transfer'].post.requestBody.content['application/json'].schema;
  assert.equal(transferSchema.additionalProperties, false, 'the documented schema is the validating one');

  const docs = await server.call('GET', '/docs', { token: null });
  assert.equal(docs.status, 200);
  assert.match(docs.text, /swagger-ui/i);

  const metrics = await server.call('GET', '/metrics', { token: null });
  assert.equal(metrics.status, 200);
  assert.match(String(metrics.headers['content-type']), /text\/plain/);
  for (const name of ['walletd_http_request_duration_seconds', 'walletd_transfers_total', 'walletd_engine_flush_records', 'walletd_engine_fsync_seconds', 'walletd_log_bytes', 'walletd_snapshot_age_seconds', 'walletd_snapshot_failures 0', 'walletd_engine_batches_prepared_in_worker', 'walletd_engine_records_shared_by_engine', 'walletd_ready 1']) {
    assert.ok(metrics.text.includes(name), `metrics include ${name}`);
  }
});

test('every response carries a request id; a valid caller id is kept', TEST_TIMEOUT, async () => {
  const generated = await server.call('GET', '/healthz', { token: null });
  assert.match(String(generated.headers['x-request-id']), /^[0-9a-f]{8}-[0-9a-z]+$/);
  const kept = await server.call('GET', '/healthz', { token: null, headers: { 'x-request-id': 'trace-123' } });
  assert.equal(kept.headers['x-request-id'], 'trace-123');
});

test('open account: 201 on creation, 200 for an identical re-create, owner defaults to the account id', TEST_TIMEOUT, async () => {
  const id = uniqueId('acct');
  const created = await server.call('POST', '/v1/accounts', { json: { account_id: id, currency: 'USD' } });
  assert.equal(created.status, 201);
  assert.deepEqual(created.body, { account_id: id, currency: 'USD', owner: id, balance: '0.00' });
  const again = await server.call('POST', '/v1/accounts', { json: { account_id: id, currency: 'USD', owner: id } });
  assert.equal(again.status, 200, 'giving owner = account id is the same request');
  assert.deepEqual(again.body, created.body);

  await deposit(server, id, '5.00');
  const afterDeposit = await server.call('POST', '/v1/accounts', { json: { account_id: id, currency: 'USD' } });
  assert.equal(afterDeposit.status, 200);
  assert.equal(afterDeposit.body.balance, '5.00', 'the re-create answers with the account as it is now');

  const yen = uniqueId('yen');
  const yenReply = await server.call('POST', '/v1/accounts', { json: { account_id: yen, currency: 'JPY', owner: 'u-1' } });
  assert.equal(yenReply.status, 201);
  assert.deepEqual(yenReply.body, { account_id: yen, currency: 'JPY', owner: 'u-1', balance: '0' });
});

test('read account: balance with the currency decimals and the sequence it reflects', TEST_TIMEOUT, async () => {
  const id = uniqueId('read');
  await openAccount(server, id, 'KWD');
  const empty = await server.call('GET', `/v1/accounts/${id}`);
  assert.equal(empty.status, 200);
  assert.equal(empty.body.balance, '0.000');
  const sequence = await deposit(server, id, '1.5', 'KWD');
  const read = await server.call('GET', `/v1/accounts/${id}`);
  assert.deepEqual(read.body, { account_id: id, currency: 'KWD', owner: id, balance: '1.500', sequence });
});

test('deposit, transfer, withdrawal: success bodies, increasing sequences, balances, money sums to zero', TEST_TIMEOUT, async () => {
  const [alice, bob] = await twoAccounts();
  const externalBefore = await server.call('GET', '/v1/accounts/@external:USD');
  assert.ok(externalBefore.status === 200 || externalBefore.status === 404, 'opened on the first USD deposit');
  const externalBeforeMinor = externalBefore.status === 200 ? minorOf(externalBefore.body.balance) : 0n;

  const depositId = uniqueId('dep');
  const deposited = await server.call('POST', `/v1/accounts/${alice}/deposits`, { json: { transaction_id: depositId, amount: '100.00', currency: 'USD' } });
  assert.equal(deposited.status, 200);
  assert.deepEqual(Object.keys(deposited.body).sort(), ['sequence', 'status', 'transaction_id']);
  assert.equal(deposited.body.status, 'success');
  assert.equal(deposited.body.transaction_id, depositId);

  const transferId = uniqueId('tr');
  const transferred = await server.call('POST', '/v1/wallet/balance_transfer', {
    json: { transaction_id: transferId, from_account: alice, to_account: bob, amount: '10.5', currency: 'USD' },
  });
  assert.equal(transferred.status, 200);
  assert.deepEqual(transferred.body, { status: 'success', transaction_id: transferId, sequence: transferred.body.sequence });
  assert.ok(transferred.body.sequence > deposited.body.sequence);

  const withdrawn = await server.call('POST', `/v1/accounts/${bob}/withdrawals`, { json: { transaction_id: uniqueId('wd'), amount: '0.25', currency: 'USD' } });
  assert.equal(withdrawn.status, 200);
  assert.ok(withdrawn.body.sequence > transferred.body.sequence);

  assert.equal(await balanceOf(server, alice), '89.50');
  assert.equal(await balanceOf(server, bob), '10.25');
  const externalAfter = await server.call('GET', '/v1/accounts/@external:USD');
  assert.equal(externalAfter.status, 200, 'the admin may read the external account');
  const externalDelta = minorOf(externalAfter.body.balance) - externalBeforeMinor;
  assert.equal(externalDelta, -(8950n + 1025n), 'the external account mirrors the money that entered');
});

test('transfer lookup: transfers, deposits and withdrawals, successes and logged rejections', TEST_TIMEOUT, async () => {
  const [alice, bob] = await twoAccounts();
  const depositId = uniqueId('dep');
  await server.call('POST', `/v1/accounts/${alice}/deposits`, { json: { transaction_id: depositId, amount: '20.00', currency: 'USD' } });
  const okId = uniqueId('ok');
  const ok = await server.call('POST', '/v1/wallet/balance_transfer', { json: { transaction_id: okId, from_account: alice, to_account: bob, amount: '7.00', currency: 'USD' } });
  const poorId = uniqueId('poor');
  const poor = await server.call('POST', '/v1/wallet/balance_transfer', { json: { transaction_id: poorId, from_account: bob, to_account: alice, amount: '700.00', currency: 'USD' } });
  assert.equal(poor.status, 422);
  const withdrawalId = uniqueId('wd');
  await server.call('POST', `/v1/accounts/${bob}/withdrawals`, { json: { transaction_id: withdrawalId, amount: '1.00', currency: 'USD' } });

  const okView = await server.call('GET', `/v1/transfers/${okId}`);
  assert.equal(okView.status, 200);
  assert.deepEqual(okView.body, { transaction_id: okId, from_account: alice, to_account: bob, amount: '7.00', currency: 'USD', status: 'success', sequence: ok.body.sequence });

  const poorView = await server.call('GET', `/v1/transfers/${poorId}`);
  assert.equal(poorView.body.status, 'rejected');
  assert.equal(poorView.body.error.code, 'insufficient_funds');
  assert.equal(typeof poorView.body.sequence, 'number', 'a logged rejection has its own sequence');

  const depositView = await server.call('GET', `/v1/transfers/${depositId}`);
  assert.equal(depositView.body.from_account, '@external:USD');
  assert.equal(depositView.body.to_account, alice);
  const withdrawalView = await server.call('GET', `/v1/transfers/${withdrawalId}`);
  assert.equal(withdrawalView.body.from_account, bob);
  assert.equal(withdrawalView.body.to_account, '@external:USD');
});

test('batch: results in request order, items applied in order, malformed items rejected alone', TEST_TIMEOUT, async () => {
  const [alice, bob] = await twoAccounts('10.00');
  const ids = [0, 1, 2, 3, 4].map(() => uniqueId('b'));
  const reply = await server.call('POST', '/v1/wallet/balance_transfers', {
    json: {
      transfers: [
        { transaction_id: ids[0], from_account: alice, to_account: bob, amount: '10.00', currency: 'USD' },
        { transaction_id: ids[1], from_account: bob, to_account: alice, amount: '4.00', currency: 'USD' }, // needs item 0 first
        { transaction_id: ids[2], from_account: bob, to_account: alice, amount: 4, currency: 'USD' },
        { transaction_id: ids[3], from_account: alice, to_account: bob, amount: '99.00', currency: 'USD' },
        { transaction_id: ids[4], from_account: alice, to_account: bob, amount: '1.00', currency: 'USD', memo: 'x' },
      ],
    },
  });
  assert.equal(reply.status, 200);
  const results = reply.body.results as Array<Record<string, any>>;
  assert.equal(results.length, 5);
  assert.deepEqual(results.map((r) => r.transaction_id), ids);
  assert.deepEqual(results.map((r) => r.status), ['success', 'success', 'rejected', 'rejected', 'rejected']);
  assert.equal(results[2]!.error.code, 'invalid_amount');
  assert.equal(results[3]!.error.code, 'insufficient_funds');
  assert.equal(results[4]!.error.code, 'invalid_request');
  assert.ok(results[1]!.sequence > results[0]!.sequence);
  assert.equal(await balanceOf(server, alice), '4.00');
  assert.equal(await balanceOf(server, bob), '6.00');

  const malformedLookup = await server.call('GET', `/v1/transfers/${ids[2]}`);
  assert.equal(malformedLookup.status, 404, 'a malformed item is not remembered');
  const retry = await server.call('POST', '/v1/wallet/balance_transfers', {
    json: { transfers: [{ transaction_id: ids[2], from_account: bob, to_account: alice, amount: '1.00', currency: 'USD' }] },
  });
  assert.equal(retry.body.results[0].status, 'success', 'its transaction_id stays free');
});

test('idempotency: a retry returns the original status and body; another body is a 409 conflict', TEST_TIMEOUT, async () => {
  const [alice, bob] = await twoAccounts('50.00');
  const body = { transaction_id: uniqueId('idem'), from_account: alice, to_account: bob, amount: '5.00', currency: 'USD' };
  const first = await server.call('POST', '/v1/wallet/balance_transfer', { json: body });
  const second = await server.call('POST', '/v1/wallet/balance_transfer', { json: body });
  assert.equal(first.status, 200);
  assert.equal(second.status, 200);
  assert.equal(second.text, first.text);
  assert.equal(await balanceOf(server, bob), '5.00');

  const conflict = await server.call('POST', '/v1/wallet/balance_transfer', { json: { ...body, amount: '6.00' } });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.error.code, 'idempotency_conflict');
  const otherTarget = await server.call('POST', '/v1/wallet/balance_transfer', { json: { ...body, to_account: alice, from_account: bob } });
  assert.equal(otherTarget.body.error.code, 'idempotency_conflict');

  const rejectedBody = { transaction_id: uniqueId('rej'), from_account: bob, to_account: alice, amount: '500.00', currency: 'USD' };
  const rejected = await server.call('POST', '/v1/wallet/balance_transfer', { json: rejectedBody });
  assert.equal(rejected.status, 422);
  await deposit(server, bob, '1000.00');
  const rejectedAgain = await server.call('POST', '/v1/wallet/balance_transfer', { json: rejectedBody });
  assert.equal(rejectedAgain.status, 422, 'a rejection is final even when funds arrived since');
  assert.equal(rejectedAgain.text, rejected.text);

  const movementId = uniqueId('mv');
  const deposited = await server.call('POST', `/v1/accounts/${alice}/deposits`, { json: { transaction_id: movementId, amount: '1.00', currency: 'USD' } });
  const depositedAgain = await server.call('POST', `/v1/accounts/${alice}/deposits`, { json: { transaction_id: movementId, amount: '1.00', currency: 'USD' } });
  assert.equal(depositedAgain.text, deposited.text);
  const asWithdrawal = await server.call('POST', `/v1/accounts/${alice}/withdrawals`, { json: { transaction_id: movementId, amount: '1.00', currency: 'USD' } });
  assert.equal(asWithdrawal.status, 409, 'a deposit and a withdrawal under one id conflict');
  const asTransfer = await server.call('POST', '/v1/wallet/balance_transfer', { json: { ...body, transaction_id: movementId } });
  assert.equal(asTransfer.status, 409, 'deposits and transfers share one transaction_id space');
  assert.equal(await balanceOf(server, alice), '46.00');
});

test('concurrent duplicates: many parallel identical requests move money once and all get the same answer', TEST_TIMEOUT, async () => {
  const [alice, bob] = await twoAccounts('100.00');
  const body = { transaction_id: uniqueId('dup'), from_account: alice, to_account: bob, amount: '30.00', currency: 'USD' };
  const replies = await Promise.all(Array.from({ length: 64 }, () => server.call('POST', '/v1/wallet/balance_transfer', { json: body })));
  assert.ok(replies.every((reply) => reply.status === 200));
  assert.equal(new Set(replies.map((reply) => reply.text)).size, 1, 'identical bodies');
  assert.equal(await balanceOf(server, bob), '30.00');

  const batchItem = { transaction_id: uniqueId('dupb'), from_account: alice, to_account: bob, amount: '1.00', currency: 'USD' };
  const batchReplies = await Promise.all(
    Array.from({ length: 16 }, () => server.call('POST', '/v1/wallet/balance_transfers', { json: { transfers: [batchItem, batchItem, batchItem] } })),
  );
  const itemResults = batchReplies.flatMap((reply) => reply.body.results as unknown[]);
  assert.equal(itemResults.length, 48);
  assert.equal(new Set(itemResults.map((item) => JSON.stringify(item))).size, 1, 'every copy, in and across batches, answers the same');
  assert.equal(await balanceOf(server, bob), '31.00');
  assert.equal(await balanceOf(server, alice), '69.00');
});

test('historical balance: by sequence, by time, current, opening balance, beyond head', TEST_TIMEOUT, async () => {
  const [alice, bob] = await twoAccounts();
  const beforeAnything = new Date(Date.now() - 60_000).toISOString();
  const s1 = await deposit(server, alice, '10.00');
  const t1 = await server.call('POST', '/v1/wallet/balance_transfer', { json: { transaction_id: uniqueId('h'), from_account: alice, to_account: bob, amount: '3.00', currency: 'USD' } });
  const s2 = t1.body.sequence as number;
  const s3 = await deposit(server, alice, '0.01');

  const at = async (query: string) => server.call('GET', `/v1/accounts/${alice}/balance${query}`);
  const current = await at('');
  assert.equal(current.status, 200);
  assert.equal(current.body.balance, '7.01');
  assert.ok(current.body.sequence >= s3, 'the current balance reflects at least the last event');
  assert.equal((await at(`?sequence=${s1}`)).body.balance, '10.00');
  assert.equal((await at(`?sequence=${s2 - 1}`)).body.balance, '10.00');
  assert.equal((await at(`?sequence=${s2}`)).body.balance, '7.00');
  assert.equal((await at(`?sequence=${s3}`)).body.balance, '7.01');
  assert.equal((await at(`?sequence=${s2}`)).text, (await at(`?sequence=${s2}`)).text, 'replaying history gives the same figure');
  assert.equal((await at('?sequence=0')).body.balance, '0.00');
  assert.equal((await at(`?at=${encodeURIComponent(beforeAnything)}`)).body.balance, '0.00', 'before the first event: opening balance');
  assert.equal((await at(`?at=${encodeURIComponent(new Date(Date.now() + 1000).toISOString())}`)).body.balance, '7.01');
  const beyond = await at('?sequence=999999999999');
  assert.equal(beyond.status, 400);
  assert.equal(beyond.body.error.code, 'invalid_request');
});

test('statement: newest first, deposits and withdrawals included, rejections not, cursor paging to a null cursor', TEST_TIMEOUT, async () => {
  const [alice, bob] = await twoAccounts('100.00');
  for (let i = 1; i <= 5; i++) {
    await server.call('POST', '/v1/wallet/balance_transfer', { json: { transaction_id: uniqueId('st'), from_account: alice, to_account: bob, amount: `${i}.00`, currency: 'USD' } });
  }
  await server.call('POST', '/v1/wallet/balance_transfer', { json: { transaction_id: uniqueId('st'), from_account: alice, to_account: bob, amount: '999.00', currency: 'USD' } });
  await server.call('POST', `/v1/accounts/${alice}/withdrawals`, { json: { transaction_id: uniqueId('wd'), amount: '0.50', currency: 'USD' } });

  const entries: Array<Record<string, any>> = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const query: string = cursor === null ? '?limit=3' : `?limit=3&cursor=${cursor}`;
    const page = await server.call('GET', `/v1/accounts/${alice}/transactions${query}`);
    assert.equal(page.status, 200);
    assert.ok(page.body.entries.length <= 3);
    entries.push(...page.body.entries);
    cursor = page.body.next_cursor;
    pages++;
  } while (cursor !== null && pages < 10);
  assert.equal(cursor, null, 'the last page says so');
  assert.equal(entries.length, 7, 'deposit, five transfers, withdrawal; no rejection');
  const sequences = entries.map((entry) => entry.sequence as number);
  assert.deepEqual(sequences, [...sequences].sort((a, b) => b - a), 'newest first');
  assert.deepEqual(entries[0], { ...entries[0], amount: '0.50', direction: 'debit', balance_after: '84.50' });
  assert.deepEqual(entries.at(-1), { ...entries.at(-1), amount: '100.00', direction: 'credit', balance_after: '100.00' });
  assert.ok(entries.every((entry) => !Number.isNaN(Date.parse(entry.at))));

  const bobPage = await server.call('GET', `/v1/accounts/${bob}/transactions`);
  assert.equal(bobPage.body.entries.length, 5);
  assert.ok(bobPage.body.entries.every((entry: Record<string, unknown>) => entry.direction === 'credit'));
  assert.equal(bobPage.body.next_cursor, null);
});

/** Two fresh USD accounts, the first funded with `funding` when given. */
async function twoAccounts(funding?: string): Promise<[string, string]> {
  const alice = uniqueId('alice');
  const bob = uniqueId('bob');
  await openAccount(server, alice);
  await openAccount(server, bob);
  if (funding !== undefined) await deposit(server, alice, funding);
  return [alice, bob];
}

test('--protocol-port off: HTTP only, no binary listener; the service is ready and takes transfers', TEST_TIMEOUT, async () => {
  const httpOnly = await WalletServer.start({ args: ['--protocol-port', 'off', '--no-fsync'] });
  try {
    const messages = httpOnly.logs().map((entry) => entry['msg']);
    assert.ok(messages.includes('protocol off: no binary protocol listener'), messages.join(' | '));
    assert.ok(!messages.includes('protocol listening'));
    const id = uniqueId('off');
    await openAccount(httpOnly, id);
    await deposit(httpOnly, id, '1.00');
    assert.equal(await balanceOf(httpOnly, id), '1.00');
  } finally {
    assert.equal((await httpOnly.stop()).code, 0);
    httpOnly.removeDataDir();
  }
});
