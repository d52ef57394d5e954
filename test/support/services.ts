/**
 * Real servers for tests: PostgreSQL and Redis on their usual loopback ports (the benchmark
 * peers' tests need them; nothing uses NATS yet, so neither the tests nor .ci/run ask for it).
 *
 * A test file asks `await requireService('postgres')` at the top. When the server answers, it
 * gets `{ skip: false }` and runs. When it does not, the file's tests are skipped with a loud
 * banner on stderr that names the server and how to start it, unless WALLETD_REQUIRE_SERVICES=1
 * (set by .ci/run), where a missing server is a failure instead: CI must never pass by skipping.
 *
 * Each check speaks the server's own protocol (SELECT 1, PING), so a
 * port held by something else does not count as the service.
 */
import { createConnection } from 'node:net';
import pg from 'pg';

export type ServiceName = 'postgres' | 'redis';

export type ServiceInfo = Readonly<{ label: string; host: string; port: number; start: string }>;

export const SERVICES: Readonly<Record<ServiceName, ServiceInfo>> = {
  postgres: {
    label: 'PostgreSQL',
    host: '127.0.0.1',
    port: 5432,
    start: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
  },
  redis: {
    label: 'Redis',
    host: '127.0.0.1',
    port: 6379,
    start: 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log',
  },
};

const CHECK_TIMEOUT_MS = 2000;

/** Trust auth on loopback; WALLETD_TEST_PG_URL overrides (e.g. another user or port). */
export function postgresUrl(): string {
  return process.env['WALLETD_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
}

export function servicesRequired(): boolean {
  return process.env['WALLETD_REQUIRE_SERVICES'] === '1';
}

/** Why the service does not answer, or undefined when it does. */
export async function serviceProblem(name: ServiceName): Promise<string | undefined> {
  try {
    if (name === 'postgres') await checkPostgres();
    else await expectGreeting(SERVICES.redis, 'PING\r\n', '+PONG');
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

export type ServiceGate = Readonly<{ skip: false | string }>;

/**
 * Use as `const gate = await requireService('redis'); test('...', { skip: gate.skip }, ...)`.
 * Throws (failing the test file) when the service is absent and services are required.
 */
export async function requireService(name: ServiceName): Promise<ServiceGate> {
  const problem = await serviceProblem(name);
  if (problem === undefined) return { skip: false };
  const service = SERVICES[name];
  const required = servicesRequired();
  const rule = '='.repeat(100);
  console.error(
    [
      rule,
      `${required ? 'FAILING' : 'SKIPPING'}: ${service.label} does not answer on ${service.host}:${service.port} (${problem})`,
      `Start it with:  ${service.start}`,
      required
        ? 'WALLETD_REQUIRE_SERVICES=1 is set, so a missing service is a failure.'
        : 'These tests are skipped, not passed. Set WALLETD_REQUIRE_SERVICES=1 to make this a failure.',
      rule,
    ].join('\n'),
  );
  if (required) throw new Error(`${service.label} is required (WALLETD_REQUIRE_SERVICES=1) but does not answer: ${problem}`);
  return { skip: `${service.label} not available on ${service.host}:${service.port}` };
}

async function checkPostgres(): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl(), connectionTimeoutMillis: CHECK_TIMEOUT_MS });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Connects, sends `request`, and expects the reply to start with `expected`. */
function expectGreeting(service: ServiceInfo, request: string, expected: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: service.host, port: service.port });
    let reply = '';
    const fail = (reason: string): void => {
      socket.destroy();
      reject(new Error(reason));
    };
    socket.setTimeout(CHECK_TIMEOUT_MS, () => fail(`no answer within ${CHECK_TIMEOUT_MS} ms`));
    socket.once('error', (error) => fail(error.message));
    socket.once('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (!reply.includes('\r\n')) return;
      socket.destroy();
      if (reply.startsWith(expected)) resolve();
      else reject(new Error(`unexpected greeting ${JSON.stringify(reply.slice(0, 40))}`));
    });
  });
}
