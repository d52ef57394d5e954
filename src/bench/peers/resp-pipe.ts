/**
 * A minimal pipelined Redis connection for the Redis peer's hot path: a whole batch of
 * EVALSHA commands is encoded into one buffer and written at once, and the integer replies are
 * parsed straight into a code array. A general client (ioredis) spends ~15 µs of client CPU per
 * command, which on this 2-core box capped the peer at a quarter of what the server can do; the
 * comparison should measure Redis, not the client library. Setup and reads still use ioredis.
 *
 * Only integer replies (":0") and errors ("-ERR ...") are expected: anything else is reported.
 */
import { createConnection, type Socket } from 'node:net';
import { assert } from '../../stdx/assert.js';

const CONNECT_TIMEOUT_MS = 5_000;
const CR = 13;
const LF = 10;

type Pending = { codes: Uint8Array; next: number; error: Error | undefined; resolve: (codes: Uint8Array) => void; reject: (error: Error) => void };

export class RespPipe {
  private readonly pending: Pending[] = [];
  private leftover: Buffer = Buffer.alloc(0);
  private failure: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('redis connection closed')));
  }

  static connect(host: string, port: number): Promise<RespPipe> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host, port });
      const timer = setTimeout(() => socket.destroy(new Error(`redis ${host}:${port}: connect timeout`)), CONNECT_TIMEOUT_MS);
      socket.once('error', reject);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', reject);
        resolve(new RespPipe(socket));
      });
    });
  }

  /** Sends `count` encoded commands; resolves with their integer replies, in order. */
  send(commands: string, count: number): Promise<Uint8Array> {
    assert(count >= 1);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.push({ codes: new Uint8Array(count), next: 0, error: undefined, resolve, reject });
      this.socket.write(commands, 'latin1');
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    const bytes = this.leftover.length === 0 ? chunk : Buffer.concat([this.leftover, chunk]);
    let start = 0;
    for (;;) {
      const end = bytes.indexOf(LF, start);
      if (end < 0) break;
      assert(bytes[end - 1] === CR, 'RESP line without CR');
      this.onReply(bytes, start, end - 1);
      start = end + 1;
    }
    this.leftover = bytes.subarray(start);
  }

  private onReply(bytes: Buffer, start: number, end: number): void {
    const request = this.pending[0];
    if (request === undefined) return this.fail(new Error('redis reply without a request'));
    const kind = bytes[start];
    const code = kind === 0x3a ? smallInteger(bytes, start + 1, end) : -1; // ":<integer>", no string made
    if (code >= 0) {
      request.codes[request.next] = code;
    } else if (kind === 0x2d) {
      request.codes[request.next] = 255; // "-ERR ...": the whole batch fails with it
      request.error ??= new Error(`redis: ${bytes.toString('latin1', start, end)}`);
    } else {
      // A multi-line reply (or an integer that is no result code) would shift or corrupt every
      // later reply: the stream is no longer usable.
      return this.fail(new Error(`redis: unexpected reply ${JSON.stringify(bytes.toString('latin1', start, Math.min(end, start + 40)))}`));
    }
    request.next++;
    if (request.next < request.codes.length) return;
    this.pending.shift();
    if (request.error === undefined) request.resolve(request.codes);
    else request.reject(request.error);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const request of this.pending.splice(0)) request.reject(error);
  }
}

/** The decimal digits in bytes[start, end) as a number in 0..255; -1 for anything else. */
function smallInteger(bytes: Buffer, start: number, end: number): number {
  if (end <= start || end - start > 3) return -1;
  let value = 0;
  for (let index = start; index < end; index++) {
    const digit = bytes[index]! - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value <= 255 ? value : -1;
}

/** RESP encoding of one bulk string (latin1 text: our keys and numbers are ASCII). */
export function bulk(text: string): string {
  return `$${text.length}\r\n${text}\r\n`;
}
