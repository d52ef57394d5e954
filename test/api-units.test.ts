// Unit checks of the HTTP layer's pure parts, in-process and without a ledger: configuration
// precedence and validation (flags > env > config file > defaults, and --help listing every
// setting), the token-bucket rate limiter on an injected clock, statement cursors, the
// historical-balance query, the schema-error-to-code mapping, and the key store's files
// (admin token 0600, keys stored only as SHA-256, atomic rewrite, constant-time lookups), and
// the server before its ledger is open (what a client sees during recovery), via inject.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { SETTINGS, parseServeArgs, serveHelpText } from '../src/api/config.js';
import { RateLimiter } from '../src/api/rate-limit.js';
import { balanceQueryOf, decodeCursor, encodeCursor } from '../src/api/routes-accounts.js';
import { codeOfSchemaError } from '../src/api/http-errors.js';
import { AUTH_FILES, KeyStore } from '../src/auth/keys.js';
import { buildHttpServer } from '../src/api/server.js';
import { ApiMetrics } from '../src/api/metrics.js';
import { LazyChildLogger, RequestLine } from '../src/api/request-log.js';
import pino from 'pino';
import { batchItemJson, batchItemOf } from '../src/api/views.js';
import { ID_SOURCE } from '../src/core/ids.js';
import { ERRORS } from '../src/core/errors.js';
import { hugePagesRequested, SERVE_NODE_FLAGS, withServeEnv } from '../src/stdx/node-flags.js';
import type { Ledger } from '../src/engine/types.js';
import { deposit, sleep, submit, withTempLedger } from './support/ledger.js';

/** A fresh temporary directory, removed when the test ends. */
function scratchDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function configOf(args: string[], env: NodeJS.ProcessEnv = {}) {
  const parsed = parseServeArgs(args, env);
  assert.equal(parsed.kind, 'config', JSON.stringify(parsed));
  return (parsed as Extract<typeof parsed, { kind: 'config' }>).config;
}

test('defaults follow API.md: port 8080, host 127.0.0.1, ./data, fsync on, 4 MiB bodies, >= 10,000 req/s', () => {
  const config = configOf([]);
  assert.equal(config.port, 8080);
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.dataDir, './data');
  assert.equal(config.fsync, true);
  assert.equal(config.bodyLimitBytes, 4 * 1024 * 1024);
  assert.ok(config.rateLimitPerSecond >= 10_000);
  assert.equal(config.rateLimitBurst, config.rateLimitPerSecond);
  assert.equal(config.adminToken, undefined);
});

test('flags beat environment, environment beats the config file', (t) => {
  const dir = scratchDir(t, 'walletd-config-');
  const file = join(dir, 'walletd.json');
  writeFileSync(file, JSON.stringify({ port: 7000, host: '0.0.0.0', data_dir: '/from/file', rate_limit: 123, fsync: false }));
  const config = configOf(['--config', file, '--port', '9000'], { WALLET_PORT: '8000', WALLET_HOST: '10.0.0.1', WALLET_ADMIN_TOKEN: 't'.repeat(20) });
  assert.equal(config.port, 9000);
  assert.equal(config.host, '10.0.0.1');
  assert.equal(config.dataDir, '/from/file');
  assert.equal(config.rateLimitPerSecond, 123);
  assert.equal(config.fsync, false);
  assert.equal(config.adminToken, 't'.repeat(20));
  assert.equal(configOf(['--port=0', '--no-coalesce']).port, 0);
  assert.equal(configOf(['--no-coalesce']).coalesceTransfers, false);
  assert.equal(configOf([], { WALLET_CONFIG: file }).port, 7000);
});

test("--protocol-port and --log-scrub-rate take 'off' (flag, environment or file); no other setting does", (t) => {
  assert.equal(configOf([]).protocolPort, 8081);
  assert.equal(configOf(['--protocol-port', 'off']).protocolPort, 'off');
  assert.equal(configOf([], { WALLET_PROTOCOL_PORT: 'off' }).protocolPort, 'off');
  const dir = scratchDir(t, 'walletd-config-');
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ protocol_port: 'off' }));
  assert.equal(configOf(['--config', join(dir, 'c.json')]).protocolPort, 'off');
  assert.equal(configOf([]).logScrubMiBPerSecond, 64);
  assert.equal(configOf(['--log-scrub-rate', 'off']).logScrubMiBPerSecond, 'off');
  assert.equal(configOf([], { WALLET_LOG_SCRUB_RATE: '200' }).logScrubMiBPerSecond, 200);
  assert.deepEqual(
    SETTINGS.filter((setting) => setting.kind === 'integer' && setting.offAllowed === true).map((setting) => setting.flag),
    ['protocol-port', 'log-scrub-rate'],
  );
  const noOff = SETTINGS.filter((setting) => setting.kind === 'integer' && setting.offAllowed !== true && setting.flag !== undefined).map((setting) => [`--${setting.flag!}`, 'off']);
  assert.ok(noOff.length >= 10, 'every other integer setting is tried');
  for (const args of [...noOff, ['--protocol-port', 'OFF'], ['--protocol-port', 'none']]) {
    const parsed = parseServeArgs(args, {});
    assert.equal(parsed.kind, 'error', args.join(' '));
  }
  const refused = parseServeArgs(['--protocol-port', 'none'], {});
  assert.match(refused.kind === 'error' ? refused.message : '', /or 'off'/);
});

test('bad settings are usage errors, never silently ignored', (t) => {
  for (const args of [['--port', '70000'], ['--port', 'x'], ['--nope'], ['--port'], ['stray'], ['--log-level', 'loud'], ['--fsync=maybe'], ['--config', '/no/such/file.json'], ['--expected-transactions', '400000000']]) {
    assert.equal(parseServeArgs(args, {}).kind, 'error', args.join(' '));
  }
  assert.equal(parseServeArgs([], { WALLET_RATE_LIMIT: '0' }).kind, 'error');
  // An admin token of the wrong length is refused here, as a usage error (it was a stack trace
  // from the key store), and the message does not show the token.
  for (const token of ['short-token', 'x'.repeat(257)]) {
    const refused = parseServeArgs([], { WALLET_ADMIN_TOKEN: token });
    assert.equal(refused.kind, 'error', `${token.length} characters`);
    const message = (refused as Extract<typeof refused, { kind: 'error' }>).message;
    assert.match(message, /WALLET_ADMIN_TOKEN: expected 16 to 256 characters, got \d+ characters/);
    assert.ok(!message.includes(token), 'the token is not echoed');
  }
  assert.equal(configOf([], { WALLET_ADMIN_TOKEN: 'a-token-of-16-ch' }).adminToken, 'a-token-of-16-ch');
  const dir = scratchDir(t, 'walletd-config-');
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ admin_token: 'x' }));
  assert.equal(parseServeArgs(['--config', join(dir, 'c.json')], {}).kind, 'error', 'the admin token is environment-only');
});

test('--help lists every flag and environment variable', () => {
  assert.equal(parseServeArgs(['--help'], {}).kind, 'help');
  const help = serveHelpText();
  for (const setting of SETTINGS) {
    assert.ok(help.includes(setting.env), setting.env);
    if (setting.flag !== undefined) assert.ok(help.includes(`--${setting.flag}`), setting.flag);
  }
  assert.ok(help.includes('--config'));
});

test('docs/OPERATIONS.md documents every setting (flag and environment variable)', () => {
  const doc = readFileSync(new URL('../../docs/OPERATIONS.md', import.meta.url), 'utf8');
  for (const setting of SETTINGS) {
    assert.ok(doc.includes(`\`${setting.env}\``), `${setting.env} documented`);
    if (setting.flag !== undefined) assert.ok(doc.includes(`--${setting.flag}`), `--${setting.flag} documented`);
  }
});

test('rate limiter: burst, refill at the configured rate, Retry-After in whole seconds, per key', () => {
  let now = 0;
  const limiter = new RateLimiter(10, 5, () => now);
  for (let i = 0; i < 5; i++) assert.equal(limiter.take('a'), 0);
  assert.equal(limiter.take('a'), 1, 'bucket empty: wait about a tenth of a second, rounded up to 1 s');
  assert.equal(limiter.take('b'), 0, 'another key has its own bucket');
  now += 100; // one token refilled
  assert.equal(limiter.take('a'), 0);
  assert.ok(limiter.take('a') >= 1);
  now += 10_000;
  for (let i = 0; i < 5; i++) assert.equal(limiter.take('a'), 0, 'refill never exceeds the burst');
  assert.ok(limiter.take('a') >= 1);
  const slow = new RateLimiter(1, 1, () => now);
  assert.equal(slow.take('k'), 0);
  assert.equal(slow.take('k'), 1, 'one token missing at 1/s is a one-second wait');
  now += 400;
  assert.equal(slow.take('k'), 1, '0.6 s left still rounds up to 1 s');
});

test('statement cursors round-trip and foreign cursors are refused', () => {
  for (const sequence of [1, 42, 9_007_199_254_740_991]) assert.equal(decodeCursor(encodeCursor(sequence)), sequence);
  for (const cursor of ['abc', 'czA', Buffer.from('s-1').toString('base64url'), Buffer.from('s0').toString('base64url'), Buffer.from('x12').toString('base64url')]) {
    assert.equal(decodeCursor(cursor), null, cursor);
  }
});

test('historical balance query: sequence, RFC 3339 at, neither, not both', () => {
  assert.deepEqual(balanceQueryOf({}), {});
  assert.deepEqual(balanceQueryOf({ sequence: 7 }), { sequence: 7 });
  assert.deepEqual(balanceQueryOf({ at: '2024-05-01T12:00:00Z' }), { atMs: Date.UTC(2024, 4, 1, 12) });
  assert.deepEqual(balanceQueryOf({ at: '2024-05-01T14:00:00.5+02:00' }), { atMs: Date.UTC(2024, 4, 1, 12, 0, 0, 500) });
  for (const at of ['2024-05-01', 'yesterday', '2024-05-01T12:00:00', '2024-13-45T99:00:00Z']) {
    assert.equal(typeof balanceQueryOf({ at }), 'string', at);
  }
  assert.equal(typeof balanceQueryOf({ sequence: 1, at: '2024-05-01T12:00:00Z' }), 'string');
});

test('schema errors map to API codes: amount → invalid_amount, currency text → unsupported_currency, rest → invalid_request', () => {
  assert.equal(codeOfSchemaError({ instancePath: '/amount', keyword: 'type' }), 'invalid_amount');
  assert.equal(codeOfSchemaError({ instancePath: '/amount', keyword: 'pattern' }), 'invalid_amount');
  assert.equal(codeOfSchemaError({ instancePath: '/currency', keyword: 'pattern' }), 'unsupported_currency');
  assert.equal(codeOfSchemaError({ instancePath: '/currency', keyword: 'type' }), 'invalid_request');
  assert.equal(codeOfSchemaError({ instancePath: '', keyword: 'required' }), 'invalid_request');
  assert.equal(codeOfSchemaError({ instancePath: '/transaction_id', keyword: 'pattern' }), 'invalid_request');
});

test('key store: generated admin token in a 0600 file, keys stored only as SHA-256, reloaded after restart', async (t) => {
  const dataDir = scratchDir(t, 'walletd-keys-');
  const first = await KeyStore.open(dataDir, undefined);
  const adminToken = first.generatedAdminToken;
  assert.ok(adminToken !== undefined && adminToken.length >= 32);
  const adminPath = join(dataDir, AUTH_FILES.directory, AUTH_FILES.adminToken);
  assert.equal(statSync(adminPath).mode & 0o777, 0o600);
  assert.deepEqual(first.store.authenticate(adminToken), { kind: 'admin' });

  const [keyA, keyB] = await Promise.all([first.store.createOwnerKey('owner-a'), first.store.createOwnerKey('owner-b')]);
  assert.notEqual(keyA, keyB);
  assert.deepEqual(first.store.authenticate(keyA), { kind: 'owner', owner: 'owner-a' });
  assert.equal(first.store.authenticate(keyA + 'x'), undefined);
  assert.equal(first.store.authenticate(''), undefined);
  assert.equal(first.store.authenticate('x'.repeat(10_000)), undefined);

  const keysPath = join(dataDir, AUTH_FILES.directory, AUTH_FILES.keys);
  const stored = readFileSync(keysPath, 'utf8');
  assert.ok(!stored.includes(keyA) && !stored.includes(keyB), 'secrets never written');
  assert.ok(stored.includes(createHash('sha256').update(keyA).digest('hex')));
  assert.equal(statSync(keysPath).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(join(dataDir, AUTH_FILES.directory)).filter((name) => name.endsWith('.tmp')), [], 'no temp files left');

  const second = await KeyStore.open(dataDir, undefined);
  assert.equal(second.generatedAdminToken, undefined, 'printed only on the first start');
  assert.deepEqual(second.store.authenticate(adminToken), { kind: 'admin' });
  assert.deepEqual(second.store.authenticate(keyB), { kind: 'owner', owner: 'owner-b' });

  const fromEnv = await KeyStore.open(dataDir, 'env-admin-token-0123456789');
  assert.deepEqual(fromEnv.store.authenticate('env-admin-token-0123456789'), { kind: 'admin' });
  assert.equal(fromEnv.store.authenticate(adminToken), undefined, 'WALLET_ADMIN_TOKEN replaces the stored token');
  await assert.rejects(KeyStore.open(dataDir, 'short'));
});

test('key store: 200 keys created at once share a few rewrites of the file, all usable after a reload', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'walletd-keys-batch-'));
  try {
    const { store } = await KeyStore.open(dataDir, 'batch-admin-token-0123456789');
    const owners = Array.from({ length: 200 }, (_, index) => `owner-${index}`);
    const keys = await Promise.all(owners.map((owner) => store.createOwnerKey(owner)));
    assert.equal(new Set(keys).size, owners.length);
    assert.equal(store.ownerKeyCount, owners.length);
    assert.ok(store.keysFileWrites >= 1 && store.keysFileWrites <= 5, `${store.keysFileWrites} rewrites for ${owners.length} keys`);
    // Keys created while a rewrite is running wait for it, then share the next one.
    const writesBefore = store.keysFileWrites;
    const first = store.createOwnerKey('late-a');
    await new Promise((resolve) => setImmediate(resolve));
    const late = await Promise.all([first, store.createOwnerKey('late-b'), store.createOwnerKey('late-c')]);
    assert.equal(store.keysFileWrites - writesBefore, 2);

    const reloaded = (await KeyStore.open(dataDir, 'batch-admin-token-0123456789')).store;
    assert.equal(reloaded.ownerKeyCount, owners.length + late.length);
    owners.forEach((owner, index) => assert.deepEqual(reloaded.authenticate(keys[index]!), { kind: 'owner', owner }));
    assert.deepEqual(reloaded.authenticate(late[0]!), { kind: 'owner', owner: 'late-a' });
    assert.deepEqual(reloaded.authenticate(late[1]!), { kind: 'owner', owner: 'late-b' });
    assert.deepEqual(reloaded.authenticate(late[2]!), { kind: 'owner', owner: 'late-c' });
    assert.deepEqual(readdirSync(join(dataDir, AUTH_FILES.directory)).filter((name) => name.endsWith('.tmp')), [], 'no temp files left');
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('while the ledger recovers: /healthz 200, /readyz and every /v1 route 503 not_ready, still authenticated first', async (t) => {
  const dataDir = scratchDir(t, 'walletd-recovering-');
  const keys = await KeyStore.open(dataDir, 'recovering-admin-token-0123');
  const config = configOf(['--data-dir', dataDir, '--log-level', 'silent']);
  const { app, context } = await buildHttpServer({ config, keys: keys.store, metrics: new ApiMetrics() });
  try {
    assert.equal(context.phase, 'recovering', 'no ledger attached: the server is recovering');
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    assert.equal(JSON.parse(ready.body).error.code, 'not_ready');
    const auth = { authorization: 'Bearer recovering-admin-token-0123' };
    const read = await app.inject({ method: 'GET', url: '/v1/accounts/alice', headers: auth });
    assert.equal(read.statusCode, 503);
    assert.equal(JSON.parse(read.body).error.code, 'not_ready');
    const write = await app.inject({ method: 'POST', url: '/v1/wallet/balance_transfer', headers: auth, payload: {} });
    assert.equal(JSON.parse(write.body).error.code, 'not_ready');
    assert.equal((await app.inject({ method: 'GET', url: '/v1/accounts/alice' })).statusCode, 401, 'credentials are checked before readiness');
    context.setPhase('closing');
    assert.equal(JSON.parse((await app.inject({ method: 'GET', url: '/readyz' })).body).error.code, 'shutting_down');
  } finally {
    await app.close();
  }
});

test('request line: the same JSON pino writes for those fields, with hostile URLs escaped', () => {
  const lines: string[] = [];
  const destination = { write: (line: string) => lines.push(line) };
  const logger = pino({ level: 'info' }, destination);
  const fields = { reqId: 'abc-1', method: 'GET', route: '/v1/accounts/:account_id', url: '/v1/accounts/a"b\\c\n\u00e9', status: 400, ms: 5.45 };
  new RequestLine(logger, destination).write(fields);
  logger.child({ reqId: fields.reqId }).info({ method: fields.method, route: fields.route, url: fields.url, status: fields.status, ms: fields.ms }, 'request');
  assert.equal(lines.length, 2);
  const [ours, pinos] = lines.map((line) => {
    assert.ok(line.endsWith('\n'));
    const { time, ...rest } = JSON.parse(line) as Record<string, unknown>;
    assert.equal(typeof time, 'number');
    return rest;
  });
  assert.deepEqual(Object.keys(ours!), Object.keys(pinos!), 'same keys in the same order');
  assert.deepEqual(ours, pinos);
  logger.level = 'warn';
  new RequestLine(logger, destination).write(fields);
  assert.equal(lines.length, 2, 'no request line below the configured level');
});

test('lazy child logger: the child is made on first use only, with its bindings', () => {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
  let children = 0;
  const parent = Object.assign(Object.create(logger) as typeof logger, {
    child: (...args: Parameters<typeof logger.child>) => {
      children++;
      return logger.child(...args);
    },
  });
  const lazy = new LazyChildLogger(parent, { reqId: 'r-1' }, {});
  assert.equal(lazy.level, 'info');
  assert.equal(children, 0, 'no child before anything is logged');
  lazy.warn({ code: 'x' }, 'careful');
  lazy.info('again');
  assert.equal(children, 1, 'one child, made once');
  assert.deepEqual(
    lines.map((line) => (JSON.parse(line) as { reqId: string; msg: string }).reqId + ' ' + (JSON.parse(line) as { msg: string }).msg),
    ['r-1 careful', 'r-1 again'],
  );
});

test('npm start runs node with the serve flags and environment the harnesses use', () => {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  const start = manifest.scripts['start'] ?? '';
  const [tunables, node, ...words] = start.split(/\s+/);
  assert.equal(tunables, `GLIBC_TUNABLES=${withServeEnv({})['GLIBC_TUNABLES']}`);
  assert.equal(node, 'node');
  const script = words.indexOf('bin/walletd.js');
  assert.ok(script > 0, `start script runs bin/walletd.js: ${start}`);
  assert.deepEqual(words.slice(0, script), [...SERVE_NODE_FLAGS]);
});

test('the serve environment asks for huge pages and keeps other glibc tunables', () => {
  assert.equal(withServeEnv({})['GLIBC_TUNABLES'], 'glibc.malloc.hugetlb=1');
  assert.equal(withServeEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' })['GLIBC_TUNABLES'], 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1');
  assert.equal(withServeEnv({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0:x.y=1' })['GLIBC_TUNABLES'], 'x.y=1:glibc.malloc.hugetlb=1');
  const env = withServeEnv({ PATH: '/bin', UNSET: undefined });
  assert.equal(env['PATH'], '/bin');
  assert.ok(!('UNSET' in env));
  assert.ok(hugePagesRequested(env));
  assert.ok(!hugePagesRequested({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }));
  assert.ok(!hugePagesRequested({}));
});

test('batch results rendered as text equal JSON.stringify of the result objects', () => {
  const ids = ['a', 'A-z_0.9:x', 'x'.repeat(64), 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-'.slice(0, 64)];
  for (const id of ids) {
    assert.match(id, new RegExp(`^${ID_SOURCE}$`));
    for (const sequence of [1, 123_456_789, 2 ** 48 - 1]) {
      // Every catalogued wire code, and one outside the catalogue (rendered as internal_error).
      for (const wire of [...Object.values(ERRORS).map((entry) => entry.wire), 255]) {
        assert.equal(batchItemJson(id, wire, sequence), JSON.stringify(batchItemOf(id, { wire, sequence })), `${id} ${wire} ${sequence}`);
      }
    }
  }
  assert.equal((JSON.parse(batchItemJson('a', 255, 1)) as { error: { code: string } }).error.code, 'internal_error');
});

test("metrics: a snapshot's records kept at once show as walletd_snapshot_records_kept", async () => {
  const metrics = new ApiMetrics();
  assert.match(await metrics.render(), /^walletd_snapshot_records_kept 0$/m, 'before any snapshot');
  metrics.engineObserver.onSnapshot?.({ sequence: 10, bytes: 100, ms: 5, newEntries: 3, entriesFrom: 'journal', recordsKeptPeak: 1234 });
  assert.match(await metrics.render(), /^walletd_snapshot_records_kept 1234$/m);
  metrics.engineObserver.onSnapshot?.({ sequence: 20, bytes: 100, ms: 5, newEntries: 3, entriesFrom: 'journal', recordsKeptPeak: 7 });
  assert.match(await metrics.render(), /^walletd_snapshot_records_kept 7$/m, 'the newest snapshot, not a sum');
});

test('balance and statement reads wait once, in the read itself; a refusal waits for the opening before its 403', async (t) => {
  await withTempLedger(async (ledger) => {
    for (const owner of ['alice', 'bob']) await ledger.openAccount({ accountId: owner, currencyCode: 'USD', owner });
    await submit(ledger, [deposit('d-1', 'alice', 500n)]);
    // Counts the route's separate durability waits (the reads' own waits happen inside them), and
    // holds each of them until `open` is called: a reply may not come before its wait ends.
    const waits: string[] = [];
    const held: Array<() => void> = [];
    const open = (): void => held.splice(0).forEach((release) => release());
    const counted = new Proxy(ledger, {
      get(target, name, receiver) {
        if (name === 'durableAccount') {
          return (accountId: string) => {
            waits.push(accountId);
            const durable = target.durableAccount(accountId);
            return new Promise((resolve) => held.push(() => resolve(durable)));
          };
        }
        return Reflect.get(target, name, receiver);
      },
    }) as Ledger;
    const dataDir = scratchDir(t, 'walletd-reads-');
    const keys = await KeyStore.open(dataDir, 'reads-admin-token-0123456789');
    const { app, context } = await buildHttpServer({ config: configOf(['--data-dir', dataDir, '--log-level', 'silent']), keys: keys.store, metrics: new ApiMetrics() });
    try {
      context.attachLedger(counted);
      const admin = { authorization: 'Bearer reads-admin-token-0123456789' };
      const created = await app.inject({ method: 'POST', url: '/v1/api-keys', headers: admin, payload: { owner: 'bob' } });
      const bob = { authorization: `Bearer ${JSON.parse(created.body).api_key}` };
      const get = async (url: string, headers: Record<string, string>) => {
        const reply = await app.inject({ method: 'GET', url, headers });
        return { status: reply.statusCode, body: JSON.parse(reply.body) };
      };

      const balance = await get('/v1/accounts/alice/balance', admin);
      assert.equal(balance.status, 200);
      assert.equal(balance.body.balance, '5.00');
      const statement = await get('/v1/accounts/alice/transactions', admin);
      assert.equal(statement.status, 200);
      assert.deepEqual(statement.body.entries.map((entry: { transaction_id: string }) => entry.transaction_id), ['d-1']);
      assert.equal((await get('/v1/accounts/bob/balance', bob)).status, 200, "the owner's own account");
      assert.deepEqual(waits, [], 'allowed reads wait only inside balanceAt and statement');

      for (const path of ['balance', 'transactions']) {
        let answered = false;
        const reply = get(`/v1/accounts/alice/${path}`, bob).finally(() => (answered = true));
        await sleep(50);
        assert.equal(answered, false, 'the refusal waits for the account to be durable');
        open();
        const refused = await reply;
        assert.equal(refused.status, 403);
        assert.equal(refused.body.error.code, 'forbidden');
        assert.equal((await get(`/v1/accounts/nobody/${path}`, bob)).status, 404);
      }
      assert.deepEqual(waits, ['alice', 'alice'], 'each refusal waits for the account it refuses');
      const view = get('/v1/accounts/alice', admin);
      await sleep(50);
      open();
      assert.equal((await view).status, 200);
      assert.deepEqual(waits, ['alice', 'alice', 'alice'], 'the account view still waits after reading');
    } finally {
      await app.close();
    }
  });
});
