/**
 * Runs a real `walletd serve` process for API tests: `node bin/walletd.js serve --port 0` on a
 * temporary data directory, reads the bound port from its JSON log, waits for /readyz, and
 * offers a small HTTP client over undici. Every test talks to it over real sockets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Agent, request } from 'undici';
import { SERVE_NODE_FLAGS, withServeEnv } from '../../src/stdx/node-flags.js';
import { sleep } from './ledger.js';

const REPO_ROOT = resolve(import.meta.dirname, '..', '..', '..');
const BIN = join(REPO_ROOT, 'bin', 'walletd.js');
const START_TIMEOUT_MS = 20_000;

export type Reply = Readonly<{ status: number; headers: Record<string, string | string[] | undefined>; body: any; text: string }>;

export type CallOptions = Readonly<{
  token?: string | null;
  /** A JS value sent as JSON. */
  json?: unknown;
  /** Sent as is (malformed JSON tests). */
  raw?: string | Buffer;
  headers?: Record<string, string>;
}>;

export type ServerOptions = Readonly<{
  dataDir?: string;
  args?: readonly string[];
  /** Options for node itself, before the script (profiling: `--cpu-prof`). */
  nodeArgs?: readonly string[];
  env?: Record<string, string>;
  /** false: the server uses its stored token, or generates one and prints it (read from stderr). */
  adminToken?: string | false;
  /** With adminToken false: the token stored by an earlier start, so none is awaited on stderr. */
  storedAdminToken?: string;
  /**
   * Send the JSON log to this file instead of a pipe (the benchmark: a log consumer in the
   * measuring process would compete with the server for CPU). `logLines` then reads the file.
   */
  logFile?: string;
}>;

export class WalletServer {
  private readonly pipedLogLines: string[] = [];
  readonly stderrLines: string[] = [];
  readonly agent = new Agent({ connections: 128, pipelining: 1 });
  private exitCode: number | null | undefined;
  private exitSignal: NodeJS.Signals | null = null;
  private readonly exited: Promise<void>;
  private boundPort = 0;

  private constructor(
    readonly child: ChildProcess,
    readonly dataDir: string,
    private token: string,
    private readonly logFile: string | undefined,
  ) {
    // Pipes are always drained: a server whose stdout is not read would stall.
    if (child.stdout !== null) createInterface({ input: child.stdout }).on('line', (line) => this.pipedLogLines.push(line));
    createInterface({ input: child.stderr! }).on('line', (line) => this.stderrLines.push(line));
    this.exited = new Promise<void>((done) =>
      child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        done();
      }),
    );
  }

  static async start(options: ServerOptions = {}): Promise<WalletServer> {
    const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'walletd-api-'));
    const adminToken = options.adminToken === false ? '' : (options.adminToken ?? `admin-${randomBytes(16).toString('hex')}`);
    const env = withServeEnv({ ...process.env, ...options.env });
    delete env['WALLET_ADMIN_TOKEN'];
    if (adminToken !== '') env['WALLET_ADMIN_TOKEN'] = adminToken;
    const args = [...SERVE_NODE_FLAGS, ...(options.nodeArgs ?? []), BIN, 'serve', '--port', '0', '--protocol-port', '0', '--data-dir', dataDir, ...(options.args ?? [])];
    const stdout = options.logFile === undefined ? 'pipe' : openSync(options.logFile, 'a');
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', stdout, 'pipe'] });
    if (typeof stdout === 'number') closeSync(stdout);
    const token = adminToken === '' ? (options.storedAdminToken ?? '') : adminToken;
    const server = new WalletServer(child, dataDir, token, options.logFile);
    // A test process that ends (or is killed by a timeout handler) takes its servers with it.
    const killOnExit = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', killOnExit);
    child.once('exit', () => process.off('exit', killOnExit));
    try {
      server.boundPort = await server.waitForPort();
      if (server.token === '') server.token = await server.waitForGeneratedToken();
      await server.waitReady();
      return server;
    } catch (error) {
      await server.stop('SIGKILL'); // never leave a half-started server behind
      throw error;
    }
  }

  /** The server's stdout lines so far (JSON log lines and anything else it printed). */
  get logLines(): string[] {
    if (this.logFile === undefined) return this.pipedLogLines;
    return readFileSync(this.logFile, 'utf8').split('\n').filter((line) => line !== '');
  }

  get port(): number {
    return this.boundPort;
  }

  get adminToken(): string {
    return this.token;
  }

  get hasExited(): boolean {
    return this.exitCode !== undefined;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async call(method: string, path: string, options: CallOptions = {}): Promise<Reply> {
    const token = options.token === undefined ? this.adminToken : options.token;
    const headers: Record<string, string> = { ...options.headers };
    if (token !== null) headers['authorization'] = `Bearer ${token}`;
    let body: string | Buffer | undefined;
    if (options.json !== undefined) body = JSON.stringify(options.json);
    if (options.raw !== undefined) body = options.raw;
    if (body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
    const response = await request(this.baseUrl + path, { method: method as 'GET', headers, body, dispatcher: this.agent });
    const text = await response.body.text();
    return { status: response.statusCode, headers: response.headers, body: parseJson(text), text };
  }

  /**
   * Declares a `bytes`-long JSON body but sends only its first kilobyte, then waits for the
   * answer: a server that enforces its body limit on Content-Length answers 413 at once. Sending
   * the whole body would race the server closing the connection (EPIPE before the response).
   */
  postOversized(path: string, bytes: number): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const headers = { authorization: `Bearer ${this.adminToken}`, 'content-type': 'application/json', 'content-length': bytes };
      const outgoing = httpRequest(`${this.baseUrl}${path}`, { method: 'POST', headers }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          outgoing.destroy();
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: parseJson(text), text });
        });
      });
      outgoing.on('error', reject);
      outgoing.write(`{"transfers":[{"memo":"${'x'.repeat(1024)}`);
    });
  }

  async waitReady(timeoutMs = START_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.hasExited) throw new Error(`server exited early:\n${this.stderrLines.join('\n')}\n${this.logLines.join('\n')}`);
      const reply = await this.call('GET', '/readyz', { token: null }).catch(() => undefined);
      if (reply?.status === 200) return;
      if (Date.now() > deadline) throw new Error('server did not become ready in time');
      await sleep(20);
    }
  }

  /** Sends `signal` and waits for the process to end; returns its exit code (null if killed). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.hasExited) this.child.kill(signal);
    await this.exited;
    await this.agent.close().catch(() => undefined);
    return { code: this.exitCode ?? null, signal: this.exitSignal };
  }

  removeDataDir(): void {
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Parsed JSON log lines (non-JSON lines are skipped). */
  logs(): Array<Record<string, unknown>> {
    return this.logLines.map(parseJson).filter((entry): entry is Record<string, unknown> => typeof entry === 'object' && entry !== null);
  }

  private async waitForPort(): Promise<number> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const listening = this.logs().find((entry) => entry['msg'] === 'listening' && typeof entry['port'] === 'number');
      if (listening !== undefined) return listening['port'] as number;
      if (this.hasExited) throw new Error(`server exited before listening:\n${this.stderrLines.join('\n')}\n${this.logLines.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`no 'listening' log line within ${START_TIMEOUT_MS} ms`);
      await sleep(10);
    }
  }

  private async waitForGeneratedToken(): Promise<string> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const line = this.stderrLines.find((text) => text.startsWith('wa_'));
      if (line !== undefined) return line.trim();
      if (Date.now() > deadline) throw new Error('no generated admin token on stderr');
      await sleep(10);
    }
  }
}

function parseJson(text: string): any {
  try {
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

export { sleep };

/** A short random id for test data, unique across runs. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** Opens a customer account as the admin and asserts it was created. */
export async function openAccount(server: WalletServer, accountId: string, currency = 'USD', owner?: string): Promise<void> {
  const reply = await server.call('POST', '/v1/accounts', { json: { account_id: accountId, currency, ...(owner === undefined ? {} : { owner }) } });
  if (reply.status !== 201) throw new Error(`open ${accountId}: ${reply.status} ${reply.text}`);
}

/** Deposits as the admin and asserts success. */
export async function deposit(server: WalletServer, accountId: string, amount: string, currency = 'USD'): Promise<number> {
  const reply = await server.call('POST', `/v1/accounts/${accountId}/deposits`, { json: { transaction_id: uniqueId('dep'), amount, currency } });
  if (reply.status !== 200) throw new Error(`deposit ${accountId}: ${reply.status} ${reply.text}`);
  return reply.body.sequence as number;
}

/** The account's current balance string, read as the admin. */
export async function balanceOf(server: WalletServer, accountId: string): Promise<string> {
  const reply = await server.call('GET', `/v1/accounts/${accountId}`);
  if (reply.status !== 200) throw new Error(`balance ${accountId}: ${reply.status} ${reply.text}`);
  return reply.body.balance as string;
}

/** Creates an owner key as the admin. */
export async function createKey(server: WalletServer, owner: string): Promise<string> {
  const reply = await server.call('POST', '/v1/api-keys', { json: { owner } });
  if (reply.status !== 201) throw new Error(`key for ${owner}: ${reply.status} ${reply.text}`);
  return reply.body.api_key as string;
}

/** "12.34" → 1234n, "-5.00" → -500n: balances of two-decimal currencies compared exactly. */
export function minorOf(text: string): bigint {
  const negative = text.startsWith('-');
  const [whole, fraction = ''] = (negative ? text.slice(1) : text).split('.');
  const value = BigInt(`${whole}${fraction.padEnd(2, '0')}`);
  return negative ? -value : value;
}
