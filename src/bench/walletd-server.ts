/**
 * The walletd server the bench starts when it has no --target: `walletd serve` as a child
 * process on a fresh temporary data directory, with production settings (fsync on) unless the
 * run asks for --no-durable, a random admin token, and ports picked by the kernel. The ports
 * are read from the server's JSON log lines; the bench waits for "ready" (ledger open).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { assert } from '../stdx/assert.js';
import { killChildAndRemove, stopChildAndRemove } from './child.js';
import { SERVE_NODE_FLAGS, withServeEnv } from '../stdx/node-flags.js';

const START_TIMEOUT_MS = 60_000;
/** `walletd serve` stops within 30 s (graceful stop deadline); then it is killed. */
const STOP_TIMEOUT_MS = 35_000;
/** Log lines kept to explain a failed start. */
const LOG_LINES_KEPT = 20;

export type WalletdServer = Readonly<{
  host: string;
  httpPort: number;
  protocolPort: number;
  token: string;
  pid: number;
  dataDir: string;
  /** SIGTERM, wait for the graceful stop, then delete the data directory. */
  stop: () => Promise<void>;
}>;

export type WalletdServerOptions = Readonly<{ durable: boolean; extraArgs?: readonly string[] }>;

/** bin/walletd.js from dist/src/bench/walletd-server.js (and from src/ when run unbuilt). */
function walletdBinPath(): string {
  return fileURLToPath(new URL('../../../bin/walletd.js', import.meta.url));
}

export async function startWalletdServer(options: WalletdServerOptions): Promise<WalletdServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'walletd-bench-'));
  const token = randomBytes(24).toString('hex');
  const host = '127.0.0.1';
  const args = [walletdBinPath(), 'serve', '--host', host, '--port', '0', '--protocol-port', '0', '--data-dir', dataDir, '--no-log-requests'];
  if (!options.durable) args.push('--no-fsync');
  args.push(...(options.extraArgs ?? []));
  const child = spawn(process.execPath, [...SERVE_NODE_FLAGS, ...args], {
    env: withServeEnv({ ...process.env, WALLET_ADMIN_TOKEN: token, WALLET_LOG_LEVEL: 'info' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const ports = await waitUntilReady(child);
    assert(child.pid !== undefined);
    return { host, ...ports, token, pid: child.pid, dataDir, stop: () => stopChildAndRemove(child, exited, STOP_TIMEOUT_MS, dataDir) };
  } catch (error) {
    await killChildAndRemove(child, exited, dataDir);
    throw error;
  }
}

type Ports = { httpPort: number; protocolPort: number };

/** Reads JSON log lines until both ports are known and the ledger says "ready". */
function waitUntilReady(child: ChildProcess): Promise<Ports> {
  assert(child.stdout !== null && child.stderr !== null);
  const recent: string[] = [];
  const keep = (line: string): void => {
    recent.push(line);
    if (recent.length > LOG_LINES_KEPT) recent.shift();
  };
  createInterface({ input: child.stderr }).on('line', keep);
  return new Promise<Ports>((resolve, reject) => {
    const found: { httpPort?: number; protocolPort?: number; ready?: boolean } = {};
    const timer = setTimeout(() => reject(new Error(`walletd serve not ready within ${START_TIMEOUT_MS} ms:\n${recent.join('\n')}`)), START_TIMEOUT_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`walletd serve exited at start (${signal ?? code}):\n${recent.join('\n')}`));
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      keep(line);
      Object.assign(found, readListening(line));
      if (found.httpPort !== undefined && found.protocolPort !== undefined && found.ready === true) {
        clearTimeout(timer);
        lines.removeAllListeners('line');
        lines.on('line', () => undefined); // keep draining, so the server never blocks on stdout
        resolve({ httpPort: found.httpPort, protocolPort: found.protocolPort });
      }
    });
  });
}

/** What one JSON log line says about the listening ports and readiness. */
export function readListening(line: string): { httpPort?: number; protocolPort?: number; ready?: boolean } {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return {};
  }
  if (typeof entry !== 'object' || entry === null) return {};
  const record = entry as Record<string, unknown>;
  const message = typeof record['msg'] === 'string' ? record['msg'] : '';
  const result: { httpPort?: number; protocolPort?: number; ready?: boolean } = {};
  if (typeof record['protocolPort'] === 'number') result.protocolPort = record['protocolPort'];
  if (typeof record['port'] === 'number') {
    if (/protocol/i.test(message)) result.protocolPort = record['port'];
    else if (message === 'listening') result.httpPort = record['port'];
  }
  if (message === 'ready') result.ready = true;
  return result;
}

