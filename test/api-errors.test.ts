// Every client-facing error code of the catalogue (src/core/errors.ts), produced over real HTTP
// against a real server process, plus a battery of malformed requests. Each malformed request
// is checked for its exact status and code, for leaving every balance (customers and the
// external account) unchanged, and — where it carried a well-formed transaction_id — for not
// being remembered (lookup 404 and the id still usable). A second server with a tiny rate
// limit produces 429.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ERRORS, type ErrorCode } from '../src/core/errors.js';
import { WalletServer, balanceOf, createKey, deposit, minorOf, openAccount, uniqueId, type Reply } from './support/http-server.js';

/** A hung request fails its test instead of stalling the run. */
const TEST_TIMEOUT = { timeout: 60_000 };

let server: WalletServer;
const A = uniqueId('err-a');
const B = uniqueId('err-b');
const J = uniqueId('err-jpy');
/** Every error code this file has seen, checked against the catalogue at the end. */
const seenCodes = new Set<string>();

before(async () => {
  server = await WalletServer.start();
  await openAccount(server, A);
  await openAccount(server, B);
  await openAccount(server, J, 'JPY');
  await deposit(server, A, '100.00');
  await deposit(server, J, '1000', 'JPY');
});

after(async () => {
  assert.equal((await server.stop()).code, 0);
  server.removeDataDir();
});

function expectError(reply: Reply, status: number, code: string, what: string): void {
  assert.equal(reply.status, status, `${what}: status (${reply.text})`);
  assert.deepEqual(Object.keys(reply.body ?? {}), ['error'], `${what}: error body shape (${reply.text})`);
  assert.equal(reply.body.error.code, code, `${what}: code`);
  assert.equal(typeof reply.body.error.message, 'string');
  seenCodes.add(code);
}

async function fingerprint(): Promise<string> {
  const balances = await Promise.all([A, B, J, '@external:USD', '@external:JPY'].map((id) => balanceOf(server, id)));
  return balances.join('|');
}

type Case = Readonly<{ name: string; method?: string; path?: string; json?: unknown; raw?: string; contentType?: string; status?: number; code: string }>;

const TRANSFER = '/v1/wallet/balance_transfer';
const BATCH = '/v1/wallet/balance_transfers';
/** A valid transfer body with a fresh id, to be broken one field at a time. */
const valid = (overrides: Record<string, unknown> = {}, omit?: string): Record<string, unknown> => {
  const body: Record<string, unknown> = { transaction_id: uniqueId('mal'), from_account: A, to_account: B, amount: '1.00', currency: 'USD', ...overrides };
  if (omit !== undefined) delete body[omit];
  return body;
};

function malformedCases(): Case[] {
  const amount = (value: unknown, currency = 'USD'): Case => ({
    name: `amount ${JSON.stringify(value)} ${currency}`,
    json: valid({ amount: value, currency, ...(currency === 'JPY' ? { from_account: J, to_account: B } : {}) }),
    code: 'invalid_amount',
  });
  const currency = (value: unknown, code = 'unsupported_currency'): Case => ({ name: `currency ${JSON.stringify(value)}`, json: valid({ currency: value }), code });
  const badId = (field: string, value: unknown): Case => ({ name: `${field} ${JSON.stringify(value)}`, json: valid({ [field]: value }), code: 'invalid_request' });
  return [
    { name: 'malformed JSON', raw: '{"transaction_id": ', code: 'invalid_request' },
    { name: 'empty JSON body', raw: '', code: 'invalid_request' },
    { name: 'JSON array body', json: [], code: 'invalid_request' },
    { name: 'JSON string body', raw: '"transfer"', code: 'invalid_request' },
    { name: 'JSON null body', raw: 'null', code: 'invalid_request' },
    { name: 'text/plain body', raw: JSON.stringify(valid()), contentType: 'text/plain', code: 'invalid_request' },
    { name: '__proto__ key', raw: `{"__proto__": {"x": 1}, ${JSON.stringify(valid()).slice(1)}`, code: 'invalid_request' },
    { name: 'missing transaction_id', json: valid({}, 'transaction_id'), code: 'invalid_request' },
    { name: 'missing from_account', json: valid({}, 'from_account'), code: 'invalid_request' },
    { name: 'missing to_account', json: valid({}, 'to_account'), code: 'invalid_request' },
    { name: 'missing amount', json: valid({}, 'amount'), code: 'invalid_request' },
    { name: 'missing currency', json: valid({}, 'currency'), code: 'invalid_request' },
    { name: 'unknown field', json: valid({ memo: 'hi' }), code: 'invalid_request' },
    badId('transaction_id', 123),
    badId('transaction_id', ''),
    badId('transaction_id', 'x'.repeat(65)),
    badId('transaction_id', 'has space'),
    badId('transaction_id', 'caf\u00e9'),
    badId('transaction_id', 'a/b'),
    badId('from_account', null),
    badId('from_account', {}),
    badId('to_account', '@external:USD'),
    badId('to_account', ['x']),
    amount(10),
    amount(null),
    amount(['1.00']),
    amount({ value: '1.00' }),
    amount(''),
    amount('-1.00'),
    amount('0'),
    amount('0.00'),
    amount('1.000'),
    amount('1e3'),
    amount(' 1.00'),
    amount('1.'),
    amount('.5'),
    amount('0x10'),
    amount('1,00'),
    amount('92233720368547758.08'),
    amount('10.0', 'JPY'),
    amount('9223372036854775808', 'JPY'),
    currency('usd'),
    currency('ZZZ'),
    currency('XXX'),
    currency('US'),
    currency('USDD'),
    currency(840, 'invalid_request'),
    { name: 'batch: transfers not an array', path: BATCH, json: { transfers: {} }, code: 'invalid_request' },
    { name: 'batch: empty', path: BATCH, json: { transfers: [] }, code: 'invalid_request' },
    { name: 'batch: 8191 items', path: BATCH, json: { transfers: Array.from({ length: 8191 }, () => ({})) }, code: 'invalid_request' },
    { name: 'batch: missing transfers', path: BATCH, json: {}, code: 'invalid_request' },
    { name: 'batch: unknown envelope field', path: BATCH, json: { transfers: [valid()], atomic: true }, code: 'invalid_request' },
    { name: 'batch: __proto__ envelope key', path: BATCH, raw: `{"__proto__": {"x": 1}, "transfers": [${JSON.stringify(valid())}]}`, code: 'invalid_request' },
    { name: 'batch: escaped __proto__ envelope key', path: BATCH, raw: `{"\\u005f_proto__": {"x": 1}, "transfers": [${JSON.stringify(valid())}]}`, code: 'invalid_request' },
    { name: 'batch: constructor envelope key', path: BATCH, raw: `{"constructor": {"prototype": {"x": 1}}, "transfers": [${JSON.stringify(valid())}]}`, code: 'invalid_request' },
    { name: 'batch: malformed JSON', path: BATCH, raw: '{"transfers": [', code: 'invalid_request' },
    { name: 'batch: empty body', path: BATCH, raw: '', code: 'invalid_request' },
    { name: 'deposit: unknown field', path: `/v1/accounts/${A}/deposits`, json: { transaction_id: uniqueId('mal'), amount: '1.00', currency: 'USD', from_account: B }, code: 'invalid_request' },
    { name: 'deposit: number amount', path: `/v1/accounts/${A}/deposits`, json: { transaction_id: uniqueId('mal'), amount: 1, currency: 'USD' }, code: 'invalid_amount' },
    { name: 'deposit: malformed path id', path: '/v1/accounts/bad%20id/deposits', json: { transaction_id: uniqueId('mal'), amount: '1.00', currency: 'USD' }, code: 'invalid_request' },
    { name: 'deposit: unknown account', path: `/v1/accounts/${uniqueId('ghost')}/deposits`, json: { transaction_id: uniqueId('mal'), amount: '1.00', currency: 'USD' }, status: 404, code: 'account_not_found' },
    { name: 'withdrawal: too many decimals', path: `/v1/accounts/${A}/withdrawals`, json: { transaction_id: uniqueId('mal'), amount: '1.001', currency: 'USD' }, code: 'invalid_amount' },
    { name: 'open account: lower-case currency', path: '/v1/accounts', json: { account_id: uniqueId('acct'), currency: 'eur' }, code: 'unsupported_currency' },
    { name: 'open account: missing currency', path: '/v1/accounts', json: { account_id: uniqueId('acct') }, code: 'invalid_request' },
    { name: 'open account: @ in id', path: '/v1/accounts', json: { account_id: '@external:EUR', currency: 'EUR' }, code: 'invalid_request' },
    { name: 'api key: malformed owner', path: '/v1/api-keys', json: { owner: 'no spaces allowed' }, code: 'invalid_request' },
    { name: 'balance: negative sequence', method: 'GET', path: `/v1/accounts/${A}/balance?sequence=-1`, code: 'invalid_request' },
    { name: 'balance: non-numeric sequence', method: 'GET', path: `/v1/accounts/${A}/balance?sequence=abc`, code: 'invalid_request' },
    { name: 'balance: bad time', method: 'GET', path: `/v1/accounts/${A}/balance?at=yesterday`, code: 'invalid_request' },
    { name: 'balance: both parameters', method: 'GET', path: `/v1/accounts/${A}/balance?sequence=1&at=2024-01-01T00:00:00Z`, code: 'invalid_request' },
    { name: 'balance: unknown parameter', method: 'GET', path: `/v1/accounts/${A}/balance?when=now`, code: 'invalid_request' },
    { name: 'statement: limit 0', method: 'GET', path: `/v1/accounts/${A}/transactions?limit=0`, code: 'invalid_request' },
    { name: 'statement: limit 1001', method: 'GET', path: `/v1/accounts/${A}/transactions?limit=1001`, code: 'invalid_request' },
    { name: 'statement: garbage cursor', method: 'GET', path: `/v1/accounts/${A}/transactions?cursor=%2A%2A%2A`, code: 'invalid_request' },
    { name: 'statement: foreign cursor', method: 'GET', path: `/v1/accounts/${A}/transactions?cursor=Zm9vYmFy`, code: 'invalid_request' },
    { name: 'transfer lookup: malformed id', method: 'GET', path: '/v1/transfers/not%20an%20id', code: 'invalid_request' },
  ];
}

test('malformed requests: right status and code, no balance changed, nothing remembered', TEST_TIMEOUT, async () => {
  const cases = malformedCases();
  assert.ok(cases.length >= 40, `${cases.length} cases`);
  const before = await fingerprint();
  const unremembered: string[] = [];
  for (const item of cases) {
    const method = item.method ?? 'POST';
    const headers = item.contentType === undefined ? undefined : { 'content-type': item.contentType };
    const reply = await server.call(method, item.path ?? TRANSFER, {
      ...(item.json === undefined ? {} : { json: item.json }),
      ...(item.raw === undefined ? {} : { raw: item.raw }),
      ...(headers === undefined ? {} : { headers }),
    });
    expectError(reply, item.status ?? 400, item.code, item.name);
    assert.equal(await fingerprint(), before, `${item.name}: no balance changed`);
    const id = (item.json as { transaction_id?: unknown } | undefined)?.transaction_id;
    if (typeof id === 'string' && /^mal-[0-9a-f]{12}$/.test(id)) unremembered.push(id);
  }
  assert.ok(unremembered.length >= 30);
  for (const id of unremembered) {
    expectError(await server.call('GET', `/v1/transfers/${id}`), 404, 'transfer_not_found', `${id} not remembered`);
  }
  const reuse = await server.call('POST', TRANSFER, { json: valid({ transaction_id: unremembered[0], amount: '0.01' }) });
  assert.equal(reuse.status, 200, 'a transaction_id of a refused request stays free');
});

test('batch items with __proto__ or constructor keys are rejected alone; only the good item is applied', TEST_TIMEOUT, async () => {
  const cents = async (id: string): Promise<bigint> => minorOf(await balanceOf(server, id));
  const [aBefore, bBefore] = [await cents(A), await cents(B)];
  const good = valid({ amount: '0.01' });
  const items = [
    `{"__proto__": {"polluted": true}, ${JSON.stringify(valid()).slice(1)}`,
    `{"\\u005f_proto__": {"polluted": true}, ${JSON.stringify(valid()).slice(1)}`,
    `{"constructor": {"prototype": {"polluted": true}}, ${JSON.stringify(valid()).slice(1)}`,
    JSON.stringify(good),
  ];
  const reply = await server.call('POST', BATCH, { raw: `{"transfers": [${items.join(',')}]}` });
  assert.equal(reply.status, 200, reply.text);
  const results = (reply.body as { results: Array<{ status: string; sequence?: number; error?: { code: string } }> }).results;
  assert.deepEqual(results.map((result) => result.error?.code ?? result.status), ['invalid_request', 'invalid_request', 'invalid_request', 'success']);
  // Only the good item moved money: exactly 0.01 from A to B.
  assert.deepEqual([await cents(A), await cents(B)], [aBefore - 1n, bBefore + 1n]);
  const retry = await server.call('POST', TRANSFER, { json: good });
  assert.equal(retry.status, 200, 'the good item was applied once; its retry answers the same');
  assert.equal((retry.body as { sequence: number }).sequence, results[3]!.sequence, 'the retry answers with the first outcome');
  assert.deepEqual([await cents(A), await cents(B)], [aBefore - 1n, bBefore + 1n], 'the retry moved nothing');
});

test('business rejections are 422, logged with a sequence, and change no balance', TEST_TIMEOUT, async () => {
  const C = uniqueId('err-c');
  await openAccount(server, C);
  const rejections: Array<[string, Record<string, unknown>]> = [
    ['insufficient_funds', valid({ from_account: B, to_account: A, amount: '5.00' })],
    ['currency_mismatch', valid({ to_account: J })],
    ['currency_mismatch', valid({ currency: 'EUR' })],
    ['same_account', valid({ to_account: A })],
    ['account_not_found', valid({ to_account: uniqueId('ghost') })],
    ['account_not_found', valid({ from_account: uniqueId('ghost') })],
  ];
  for (const [code, body] of rejections) {
    const before = await fingerprint();
    const reply = await server.call('POST', TRANSFER, { json: body });
    expectError(reply, 422, code, `${code} ${JSON.stringify(body)}`);
    assert.equal(await fingerprint(), before);
    const view = await server.call('GET', `/v1/transfers/${String(body['transaction_id'])}`);
    assert.equal(view.body.status, 'rejected');
    assert.equal(view.body.error.code, code);
    assert.ok(view.body.sequence > 0);
  }
  const withdrawal = await server.call('POST', `/v1/accounts/${B}/withdrawals`, { json: { transaction_id: uniqueId('wd'), amount: '50.00', currency: 'USD' } });
  expectError(withdrawal, 422, 'insufficient_funds', 'withdrawal beyond the balance');
});

test('balance_overflow: a credit past 2^63-1 minor units is rejected', TEST_TIMEOUT, async () => {
  const rich = uniqueId('rich');
  await openAccount(server, rich, 'BHD');
  const max = await server.call('POST', `/v1/accounts/${rich}/deposits`, { json: { transaction_id: uniqueId('max'), amount: '9223372036854775.807', currency: 'BHD' } });
  assert.equal(max.status, 200);
  const over = await server.call('POST', `/v1/accounts/${rich}/deposits`, { json: { transaction_id: uniqueId('over'), amount: '0.001', currency: 'BHD' } });
  expectError(over, 422, 'balance_overflow', 'one more fils');
  assert.equal(await balanceOf(server, rich), '9223372036854775.807');
});

test('conflicts and lookups: account_exists, idempotency_conflict, account_not_found, transfer_not_found', TEST_TIMEOUT, async () => {
  expectError(await server.call('POST', '/v1/accounts', { json: { account_id: A, currency: 'EUR' } }), 409, 'account_exists', 'other currency');
  expectError(await server.call('POST', '/v1/accounts', { json: { account_id: A, currency: 'USD', owner: 'someone-else' } }), 409, 'account_exists', 'other owner');
  const body = valid({ amount: '0.10' });
  assert.equal((await server.call('POST', TRANSFER, { json: body })).status, 200);
  const before = await fingerprint();
  expectError(await server.call('POST', TRANSFER, { json: { ...body, amount: '0.11' } }), 409, 'idempotency_conflict', 'same id, other amount');
  assert.equal(await fingerprint(), before);
  expectError(await server.call('GET', `/v1/accounts/${uniqueId('ghost')}`), 404, 'account_not_found', 'GET unknown account');
  expectError(await server.call('GET', `/v1/accounts/${uniqueId('ghost')}/balance`), 404, 'account_not_found', 'balance of unknown account');
  expectError(await server.call('GET', `/v1/accounts/${uniqueId('ghost')}/transactions`), 404, 'account_not_found', 'statement of unknown account');
  expectError(await server.call('GET', `/v1/transfers/${uniqueId('ghost')}`), 404, 'transfer_not_found', 'unknown transfer');
  expectError(await server.call('GET', '/v1/nothing-here'), 404, 'not_found', 'unknown route');
});

test('credentials: 401 without or with an unknown token, 403 when not allowed', TEST_TIMEOUT, async () => {
  expectError(await server.call('GET', `/v1/accounts/${A}`, { token: null }), 401, 'unauthorized', 'no token');
  expectError(await server.call('GET', `/v1/accounts/${A}`, { token: 'not-a-token' }), 401, 'unauthorized', 'unknown token');
  const key = await createKey(server, uniqueId('owner'));
  expectError(await server.call('GET', `/v1/accounts/${A}`, { token: key }), 403, 'forbidden', "another owner's account");
});

test('payload_too_large beyond 4 MiB, while a full 8190-item batch with 64-character ids fits', TEST_TIMEOUT, async () => {
  const before = await fingerprint();
  expectError(await server.postOversized(BATCH, 5 * 1024 * 1024), 413, 'payload_too_large', '5 MiB body');
  expectError(await server.postOversized(TRANSFER, 4 * 1024 * 1024 + 1), 413, 'payload_too_large', 'one byte over 4 MiB');
  assert.equal(await fingerprint(), before);

  const long = (prefix: string, index: number) => `${prefix}${index}`.padEnd(64, 'x');
  const from = long('full-from-', 0);
  const to = long('full-to-', 0);
  await openAccount(server, from);
  await openAccount(server, to);
  await deposit(server, from, '100000.00');
  const transfers = Array.from({ length: 8190 }, (_, index) => ({
    transaction_id: long(`full-${uniqueId('t')}-`, index),
    from_account: from,
    to_account: to,
    amount: '1.00',
    currency: 'USD',
  }));
  const body = JSON.stringify({ transfers });
  assert.ok(body.length > 2 * 1024 * 1024 && body.length < 4 * 1024 * 1024, `${body.length} bytes`);
  const reply = await server.call('POST', BATCH, { raw: body });
  assert.equal(reply.status, 200);
  assert.equal(reply.body.results.length, 8190);
  assert.ok(reply.body.results.every((result: { status: string }) => result.status === 'success'));
  assert.equal(await balanceOf(server, to), '8190.00');
});

test('rate_limited: 429 with Retry-After per key; a batch counts as one request; nothing remembered', TEST_TIMEOUT, async () => {
  const limited = await WalletServer.start({ args: ['--rate-limit', '2', '--rate-limit-burst', '3', '--no-fsync'] });
  try {
    const key = await createKey(limited, 'owner-r'); // the admin's first token
    const batch = { transfers: Array.from({ length: 50 }, () => valid({ from_account: 'nobody', to_account: 'nobody-2' })) };
    assert.equal((await limited.call('POST', BATCH, { json: batch })).status, 200, 'a 50-item batch takes one token');
    assert.equal((await limited.call('GET', '/v1/transfers/none')).status, 404, 'third token');
    const refusedBody = valid({ from_account: 'nobody', to_account: 'nobody-2' });
    const refused = await limited.call('POST', TRANSFER, { json: refusedBody });
    expectError(refused, 429, 'rate_limited', 'fourth request within the burst window');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    const ownBucket = await limited.call('GET', '/v1/transfers/none', { token: key });
    assert.equal(ownBucket.status, 404, 'another key has its own bucket');
    const lookup = await limited.call('GET', `/v1/transfers/${String(refusedBody['transaction_id'])}`, { token: key });
    expectError(lookup, 404, 'transfer_not_found', 'a 429 is not remembered');
  } finally {
    await limited.stop();
    limited.removeDataDir();
  }
});

test('ledger_full: 507 beyond --max-transactions and --max-accounts; nothing logged; retries of remembered ids still answer', TEST_TIMEOUT, async () => {
  const full = await WalletServer.start({ args: ['--max-transactions', '2', '--max-accounts', '2', '--no-fsync'] });
  try {
    await openAccount(full, 'full-a');
    await openAccount(full, 'full-b');
    const third = await full.call('POST', '/v1/accounts', { json: { account_id: 'full-c', currency: 'USD' } });
    expectError(third, 507, 'ledger_full', 'a third customer account');
    await deposit(full, 'full-a', '5.00'); // remembered id 1 (opens @external:USD beyond the account limit)
    const first = { transaction_id: 'full-t1', from_account: 'full-a', to_account: 'full-b', amount: '1.00', currency: 'USD' };
    const accepted = await full.call('POST', TRANSFER, { json: first }); // remembered id 2
    assert.equal(accepted.status, 200, accepted.text);
    const headSequence = async (): Promise<string | undefined> => /^walletd_head_sequence (\d+)$/m.exec((await full.call('GET', '/metrics')).text)?.[1];
    const headBefore = await headSequence();
    const refused = await full.call('POST', TRANSFER, { json: { ...first, transaction_id: 'full-t2' } });
    expectError(refused, 507, 'ledger_full', 'a third transaction id');
    const batch = await full.call('POST', BATCH, { json: { transfers: [first, { ...first, transaction_id: 'full-t3' }] } });
    assert.equal(batch.status, 200, batch.text);
    assert.deepEqual(
      batch.body.results.map((result: { status: string; error?: { code: string } }) => result.error?.code ?? result.status),
      ['success', 'ledger_full'],
      'in a batch the retry answers and the new id is refused alone',
    );
    assert.equal(batch.body.results[0].sequence, accepted.body.sequence);
    assert.equal(await balanceOf(full, 'full-b'), '1.00', 'moved once');
    expectError(await full.call('GET', '/v1/transfers/full-t2'), 404, 'transfer_not_found', 'a refused id is not remembered');
    assert.ok(headBefore !== undefined);
    assert.equal(await headSequence(), headBefore, 'the refused ids and the retry logged nothing');
    const metrics = (await full.call('GET', '/metrics')).text;
    assert.match(metrics, /^walletd_transactions_max 2$/m);
    assert.match(metrics, /^walletd_customer_accounts 2$/m);
    assert.match(metrics, /^walletd_customer_accounts_max 2$/m);
  } finally {
    await full.stop();
    full.removeDataDir();
  }
});

/**
 * Codes of the catalogue that a well-behaved server does not answer to a client's request here:
 * success, the binary protocol's own code, and operational failures (load, shutdown, recovery,
 * timeouts, bugs). Every other code, including any added to ERRORS later, must be produced above.
 */
const NOT_PRODUCED_HERE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ok',
  'protocol_error',
  'overloaded',
  'shutting_down',
  'not_ready',
  'request_timeout',
  'internal_error',
]);

test('every client-facing error code of the catalogue was produced', () => {
  const expected = (Object.keys(ERRORS) as ErrorCode[]).filter((code) => !NOT_PRODUCED_HERE.has(code));
  assert.deepEqual(expected.filter((code) => !seenCodes.has(code)), []);
});
