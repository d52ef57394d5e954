// Authentication and authorization over real HTTP against a real server: the 401/403 matrix of
// API.md for the admin token, an owner key, another owner's key, an unknown token and no token,
// on every /v1 route; batch items refused one by one for a foreign source; and the credential
// files and logs: a generated admin token is printed once on stderr, stored 0600, and neither
// it nor any API key ever appears in the JSON logs or the key file.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WalletServer, balanceOf, createKey, deposit, minorOf, openAccount, uniqueId } from './support/http-server.js';

/** A hung request fails its test instead of stalling the run. */
const TEST_TIMEOUT = { timeout: 60_000 };

let server: WalletServer;
let keyA: string;
let keyB: string;
let keyC: string;
const ownerA = uniqueId('owner-a');
const ownerB = uniqueId('owner-b');
const ownerC = uniqueId('owner-c');
const accountA = uniqueId('acct-a');
const accountB = uniqueId('acct-b');
let transferAB: string;

before(async () => {
  server = await WalletServer.start({ adminToken: false });
  keyA = await createKey(server, ownerA);
  keyB = await createKey(server, ownerB);
  keyC = await createKey(server, ownerC);
  await openAccount(server, accountA, 'USD', ownerA);
  await openAccount(server, accountB, 'USD', ownerB);
  await deposit(server, accountA, '100.00');
  transferAB = uniqueId('ab');
  const reply = await server.call('POST', '/v1/wallet/balance_transfer', {
    json: { transaction_id: transferAB, from_account: accountA, to_account: accountB, amount: '1.00', currency: 'USD' },
  });
  assert.equal(reply.status, 200);
});

after(async () => {
  assert.equal((await server.stop()).code, 0);
  server.removeDataDir();
});

type Who = 'admin' | 'ownerA' | 'ownerB' | 'ownerC' | 'unknown' | 'none';
const WHO: readonly Who[] = ['admin', 'ownerA', 'ownerB', 'ownerC', 'unknown', 'none'];

function tokenOf(who: Who): string | null {
  switch (who) {
    case 'admin':
      return server.adminToken;
    case 'ownerA':
      return keyA;
    case 'ownerB':
      return keyB;
    case 'ownerC':
      return keyC;
    case 'unknown':
      return 'wk_this-key-was-never-issued';
    case 'none':
      return null;
  }
}

type Row = Readonly<{ name: string; method: string; path: () => string; body?: () => unknown; expect: Record<Who, number> }>;

/** Expected status per caller. Bodies that succeed use fresh ids so each call is a new operation. */
const MATRIX: readonly Row[] = [
  {
    name: 'open an account for owner A',
    method: 'POST',
    path: () => '/v1/accounts',
    body: () => ({ account_id: uniqueId('new'), currency: 'USD', owner: ownerA }),
    expect: { admin: 201, ownerA: 201, ownerB: 403, ownerC: 403, unknown: 401, none: 401 },
  },
  { name: 'read account A', method: 'GET', path: () => `/v1/accounts/${accountA}`, expect: { admin: 200, ownerA: 200, ownerB: 403, ownerC: 403, unknown: 401, none: 401 } },
  { name: 'balance of A', method: 'GET', path: () => `/v1/accounts/${accountA}/balance`, expect: { admin: 200, ownerA: 200, ownerB: 403, ownerC: 403, unknown: 401, none: 401 } },
  { name: 'statement of A', method: 'GET', path: () => `/v1/accounts/${accountA}/transactions`, expect: { admin: 200, ownerA: 200, ownerB: 403, ownerC: 403, unknown: 401, none: 401 } },
  { name: 'read the external account', method: 'GET', path: () => '/v1/accounts/@external:USD', expect: { admin: 200, ownerA: 403, ownerB: 403, ownerC: 403, unknown: 401, none: 401 } },
  {
    name: 'transfer from A',
    method: 'POST',
    path: () => '/v1/wallet/balance_transfer',
    body: () => ({ transaction_id: uniqueId('m'), from_account: accountA, to_account: accountB, amount: '0.01', currency: 'USD' }),
    expect: { admin: 200, ownerA: 200, ownerB: 403, ownerC: 403, unknown: 401, none: 401 },
  },
  {
    name: 'deposit into A',
    method: 'POST',
    path: () => `/v1/accounts/${accountA}/deposits`,
    body: () => ({ transaction_id: uniqueId('m'), amount: '0.01', currency: 'USD' }),
    expect: { admin: 200, ownerA: 403, ownerB: 403, ownerC: 403, unknown: 401, none: 401 },
  },
  {
    name: 'withdraw from A',
    method: 'POST',
    path: () => `/v1/accounts/${accountA}/withdrawals`,
    body: () => ({ transaction_id: uniqueId('m'), amount: '0.01', currency: 'USD' }),
    expect: { admin: 200, ownerA: 403, ownerB: 403, ownerC: 403, unknown: 401, none: 401 },
  },
  {
    name: 'create an API key',
    method: 'POST',
    path: () => '/v1/api-keys',
    body: () => ({ owner: ownerA }),
    expect: { admin: 201, ownerA: 403, ownerB: 403, ownerC: 403, unknown: 401, none: 401 },
  },
  { name: 'read transfer A→B', method: 'GET', path: () => `/v1/transfers/${transferAB}`, expect: { admin: 200, ownerA: 200, ownerB: 200, ownerC: 403, unknown: 401, none: 401 } },
];

test('the 401/403 matrix: admin, owner key, other owners, unknown token, no token', TEST_TIMEOUT, async () => {
  for (const row of MATRIX) {
    for (const who of WHO) {
      const balanceBefore = await balanceOf(server, accountA);
      const body = row.body?.();
      const reply = await server.call(row.method, row.path(), { token: tokenOf(who), ...(body === undefined ? {} : { json: body }) });
      const expected = row.expect[who];
      assert.equal(reply.status, expected, `${row.name} as ${who}: ${reply.text}`);
      if (expected === 401) {
        assert.equal(reply.body.error.code, 'unauthorized');
        assert.equal(reply.headers['www-authenticate'], 'Bearer');
      }
      if (expected === 403) assert.equal(reply.body.error.code, 'forbidden');
      if (expected >= 400) assert.equal(await balanceOf(server, accountA), balanceBefore, `${row.name} as ${who} changed nothing`);
    }
  }
});

test('an owner key may open accounts only for its own owner; an omitted owner means the account id', TEST_TIMEOUT, async () => {
  const own = await server.call('POST', '/v1/accounts', { token: keyA, json: { account_id: ownerA, currency: 'EUR' } });
  assert.equal(own.status, 201, 'account id = owner id, owner omitted');
  const other = await server.call('POST', '/v1/accounts', { token: keyA, json: { account_id: uniqueId('x'), currency: 'EUR' } });
  assert.equal(other.status, 403, 'owner omitted: it would be owned by the new account id');
});

test('a forbidden transfer is not remembered; batch items from a foreign account are refused alone', TEST_TIMEOUT, async () => {
  const id = uniqueId('steal');
  const steal = await server.call('POST', '/v1/wallet/balance_transfer', {
    token: keyB,
    json: { transaction_id: id, from_account: accountA, to_account: accountB, amount: '5.00', currency: 'USD' },
  });
  assert.equal(steal.status, 403);
  assert.equal((await server.call('GET', `/v1/transfers/${id}`)).status, 404);

  const before = await balanceOf(server, accountB);
  const batch = await server.call('POST', '/v1/wallet/balance_transfers', {
    token: keyB,
    json: {
      transfers: [
        { transaction_id: uniqueId('bf'), from_account: accountA, to_account: accountB, amount: '5.00', currency: 'USD' },
        { transaction_id: uniqueId('bo'), from_account: accountB, to_account: accountA, amount: '0.01', currency: 'USD' },
        { transaction_id: uniqueId('bg'), from_account: uniqueId('ghost'), to_account: accountB, amount: '0.01', currency: 'USD' },
      ],
    },
  });
  assert.equal(batch.status, 200);
  assert.deepEqual(
    batch.body.results.map((result: { status: string; error?: { code: string } }) => result.error?.code ?? result.status),
    ['forbidden', 'success', 'forbidden'],
  );
  assert.equal(minorOf(await balanceOf(server, accountB)), minorOf(before) - 1n);
});

test('the generated admin token: printed once on stderr, stored 0600, absent from logs; keys never logged or stored', TEST_TIMEOUT, async () => {
  const printed = server.stderrLines.filter((line) => line === server.adminToken);
  assert.equal(printed.length, 1);
  const tokenPath = join(server.dataDir, 'auth', 'admin-token');
  assert.equal(statSync(tokenPath).mode & 0o777, 0o600);
  assert.equal(readFileSync(tokenPath, 'utf8').trim(), server.adminToken);
  const keyFile = readFileSync(join(server.dataDir, 'auth', 'api-keys.json'), 'utf8');
  for (const secret of [keyA, keyB, keyC]) assert.ok(!keyFile.includes(secret), 'only hashes are stored');

  // Stopped first, so every buffered log line has been written out.
  const stopped = await server.stop();
  assert.equal(stopped.code, 0);
  const logText = server.logLines.join('\n');
  assert.ok(server.logs().some((entry) => entry['msg'] === 'request' && typeof entry['reqId'] === 'string'), 'one JSON line per request, with its id');
  for (const secret of [server.adminToken, keyA, keyB, keyC]) assert.ok(!logText.includes(secret), 'no token in the logs');

  // A restart on the same directory reuses the stored token and keys and prints nothing.
  server = await WalletServer.start({ dataDir: server.dataDir, adminToken: false, storedAdminToken: server.adminToken });
  assert.ok(!server.stderrLines.some((line) => line.startsWith('wa_')), 'not printed a second time');
  assert.equal((await server.call('GET', `/v1/accounts/${accountA}`, { token: keyA })).status, 200, 'keys survive a restart');
  assert.equal((await server.call('GET', `/v1/accounts/${accountA}`)).status, 200, 'the stored admin token still works');
});
