/**
 * A private redis-server for the durable comparison: the machine's Redis keeps nothing on disk
 * (appendonly no), so the bench starts its own with an append-only file fsynced on every write
 * (appendfsync always: Redis fsyncs once per event-loop turn, i.e. per group of pipelined
 * commands, before it answers), on a free loopback port and a temporary directory, and stops
 * it by pid afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../../stdx/assert.js';
import { killChildAndRemove, running, stopChildAndRemove } from '../child.js';

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 50;

export type RedisServerHandle = Readonly<{
  host: string;
  port: number;
  pid: number;
  dataDir: string;
  stop: () => Promise<void>;
}>;

export type RedisServerOptions = Readonly<{
  /** 'always' for the durable comparison; 'no' writes no append-only file at all. */
  appendFsync: 'always' | 'everysec' | 'no-aof';
  executable?: string;
}>;

export async function startRedisServer(options: RedisServerOptions): Promise<RedisServerHandle> {
  const host = '127.0.0.1';
  const port = await freeLoopbackPort();
  const dataDir = mkdtempSync(join(tmpdir(), 'walletd-bench-redis-'));
  const persistence =
    options.appendFsync === 'no-aof' ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', options.appendFsync];
  const args = ['--port', String(port), '--bind', host, '--save', '', ...persistence, '--dir', dataDir, '--logfile', join(dataDir, 'redis.log')];
  const child = spawn(options.executable ?? 'redis-server', args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnFailed = new Promise<Error>((resolve) => child.once('error', resolve));
  try {
    const exitedEarly = exited.then(() => new Error(`redis-server exited at start: ${readLogTail(dataDir)}`));
    const failure = await Promise.race([waitForPing(host, port, START_TIMEOUT_MS, child).then(() => undefined), spawnFailed, exitedEarly]);
    if (failure !== undefined) throw failure;
  } catch (error) {
    await killChildAndRemove(child, exited, dataDir);
    throw error;
  }
  const pid = child.pid;
  assert(pid !== undefined, 'redis-server has no pid');
  return { host, port, pid, dataDir, stop: () => stopChildAndRemove(child, exited, STOP_TIMEOUT_MS, dataDir) };
}

function readLogTail(dataDir: string): string {
  try {
    return readFileSync(join(dataDir, 'redis.log'), 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '(no log)';
  }
}


/** Asks the kernel for a free port; the tiny race until redis binds it is acceptable here. */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** Polls until PING answers; gives up at once if the child is gone (spawn failed, or it exited). */
async function waitForPing(host: string, port: number, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!running(child)) throw new Error('redis-server is not running');
    if (await pingOnce(host, port)) return;
    if (Date.now() > deadline) throw new Error(`redis-server on ${host}:${port} did not answer within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

/** True when a Redis server at host:port answers PING with +PONG. */
function pingOnce(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    let reply = '';
    const finish = (answered: boolean): void => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
  });
}
