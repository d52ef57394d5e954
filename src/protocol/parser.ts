/**
 * The byte-level parser of the protocol, as an explicit state machine.
 *
 * Bytes arrive in chunks of any size (one byte, half a header, ten frames). The parser copies
 * each byte exactly once: fixed-size parts into a 16-byte scratch buffer, bodies straight into
 * a buffer of the announced size. It stops after every complete event so the caller can apply
 * back-pressure between frames (stop at the in-flight limit and keep the rest of the chunk).
 *
 * Everything that can be checked from a header is checked before the body is buffered: an
 * oversize length, an unknown op or a count that does not match the length fails at once,
 * without allocating. The checksum is checked when the body is complete, before the frame is
 * handed out, so a frame that fails any check is never acted on.
 *
 *   server: handshake_head → handshake_token → frame_header ⇄ frame_body
 *   client: handshake_reply → frame_header ⇄ frame_body
 *   any state → failed (terminal)
 */
import { assert } from '../stdx/assert.js';
import {
  FRAME_HEADER_BYTES,
  HANDSHAKE_HEAD_BYTES,
  HANDSHAKE_REPLY_BYTES,
  MAGIC_U32,
  PROTOCOL_VERSION,
  TOKEN_BYTES_MAX,
} from './constants.js';
import {
  decodeFrameHeader,
  decodeHandshakeHead,
  decodeHandshakeReply,
  frameChecksum,
  requestCountMax,
  requestItemBytes,
  responseItemBytes,
} from './frame.js';
import type { FrameHeader, HandshakeReply } from './frame.js';

export type ParserRole = 'server' | 'client';

const State = {
  handshake_head: 1,
  handshake_token: 2,
  handshake_reply: 3,
  frame_header: 4,
  frame_body: 5,
  failed: 6,
} as const;
type StateCode = (typeof State)[keyof typeof State];

export type ParseEvent =
  | Readonly<{ kind: 'handshake'; version: number; token: string }>
  | Readonly<{ kind: 'handshake_reply'; reply: HandshakeReply }>
  | Readonly<{ kind: 'frame'; header: FrameHeader; body: Buffer }>
  /** `requestId` is the offending frame's when its header was read, else 0. */
  | Readonly<{ kind: 'error'; requestId: number; reason: string }>;

export type ParserOptions = Readonly<{
  role: ParserRole;
  frameBodyBytesMax: number;
  /** Where bodies go; the server hands out pooled buffers, which the caller releases. */
  allocateBody: (bytes: number) => Buffer;
  /** Takes back a body the parser will never hand out (checksum mismatch, dispose mid-frame). */
  releaseBody: (body: Buffer) => void;
}>;

export class FrameParser {
  private readonly options: ParserOptions;
  private state: StateCode;
  private readonly scratch = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  private scratchFilled = 0;
  private scratchNeeded: number;
  private body: Buffer = Buffer.alloc(0);
  private bodyFilled = 0;
  private header: FrameHeader | undefined;
  private ready: ParseEvent | undefined;

  constructor(options: ParserOptions) {
    assert(options.frameBodyBytesMax > 0);
    this.options = options;
    const server = options.role === 'server';
    this.state = server ? State.handshake_head : State.handshake_reply;
    this.scratchNeeded = server ? HANDSHAKE_HEAD_BYTES : HANDSHAKE_REPLY_BYTES;
  }

  get failed(): boolean {
    return this.state === State.failed;
  }

  /** True while a frame is partly read: closing now would cut it (it is then simply dropped). */
  get midFrame(): boolean {
    return this.state === State.frame_body || (this.state === State.frame_header && this.scratchFilled > 0);
  }

  /**
   * Reads from `chunk` at `offset` until one event is complete or the chunk is used up.
   * Returns the offset reached; take() then yields the event, if one completed.
   */
  consume(chunk: Uint8Array, offset: number): number {
    assert(offset >= 0 && offset <= chunk.length);
    assert(this.ready === undefined, 'previous parse event not taken');
    let at = offset;
    while (at < chunk.length && this.ready === undefined && this.state !== State.failed) {
      at = this.state === State.handshake_token || this.state === State.frame_body ? this.fillBody(chunk, at) : this.fillScratch(chunk, at);
    }
    return at;
  }

  /** Releases a partly read body when the connection goes away mid-frame. */
  dispose(): void {
    const event = this.ready;
    this.ready = undefined;
    if (event?.kind === 'frame') this.options.releaseBody(event.body);
    if (this.state === State.frame_body) this.options.releaseBody(this.body);
    this.body = EMPTY;
    this.state = State.failed;
  }

  take(): ParseEvent | undefined {
    const event = this.ready;
    this.ready = undefined;
    return event;
  }

  private fillScratch(chunk: Uint8Array, at: number): number {
    const copied = Math.min(this.scratchNeeded - this.scratchFilled, chunk.length - at);
    this.scratch.set(chunk.subarray(at, at + copied), this.scratchFilled);
    this.scratchFilled += copied;
    if (this.scratchFilled === this.scratchNeeded) {
      this.scratchFilled = 0;
      this.onScratchComplete();
    }
    return at + copied;
  }

  private fillBody(chunk: Uint8Array, at: number): number {
    const copied = Math.min(this.body.length - this.bodyFilled, chunk.length - at);
    this.body.set(chunk.subarray(at, at + copied), this.bodyFilled);
    this.bodyFilled += copied;
    if (this.bodyFilled === this.body.length) this.onBodyComplete();
    return at + copied;
  }

  private onScratchComplete(): void {
    switch (this.state) {
      case State.handshake_head:
        return this.onHandshakeHead();
      case State.handshake_reply:
        return this.onHandshakeReply();
      case State.frame_header:
        return this.onFrameHeader();
      default:
        assert(false, `scratch complete in state ${this.state}`);
    }
  }

  private onBodyComplete(): void {
    if (this.state === State.handshake_token) {
      const token = this.body.toString('utf8');
      this.ready = { kind: 'handshake', version: PROTOCOL_VERSION, token };
      this.enterFrameHeader();
      return;
    }
    assert(this.state === State.frame_body);
    const header = this.header;
    assert(header !== undefined);
    if (frameChecksum(this.scratch, this.body) !== header.checksum) {
      this.options.releaseBody(this.body);
      this.body = EMPTY;
      return this.fail(header.requestId, 'checksum mismatch');
    }
    this.ready = { kind: 'frame', header, body: this.body };
    this.enterFrameHeader();
  }

  private onHandshakeHead(): void {
    const head = decodeHandshakeHead(this.scratch);
    if (head.magic !== MAGIC_U32) return this.fail(0, 'bad magic');
    if (head.version !== PROTOCOL_VERSION) return this.fail(0, `unsupported version ${head.version}`);
    if (head.tokenBytes === 0 || head.tokenBytes > TOKEN_BYTES_MAX) return this.fail(0, 'token length out of range');
    this.state = State.handshake_token;
    this.body = Buffer.allocUnsafe(head.tokenBytes);
    this.bodyFilled = 0;
  }

  private onHandshakeReply(): void {
    const reply = decodeHandshakeReply(this.scratch);
    if (reply.magic !== MAGIC_U32) return this.fail(0, 'bad magic in handshake reply');
    this.ready = { kind: 'handshake_reply', reply };
    this.enterFrameHeader();
  }

  private onFrameHeader(): void {
    const header = decodeFrameHeader(this.scratch);
    const reason = this.checkHeader(header);
    if (reason !== undefined) return this.fail(header.requestId, reason);
    this.header = header;
    this.state = State.frame_body;
    if (header.bodyBytes === 0) {
      // Only responses may be empty (an error status); the checksum then covers the header alone.
      this.body = EMPTY;
      return this.onBodyComplete();
    }
    this.body = this.options.allocateBody(header.bodyBytes);
    this.bodyFilled = 0;
    assert(this.body.length === header.bodyBytes, 'allocateBody returned the wrong size');
  }

  /** Everything a header alone can prove wrong; undefined when it is acceptable. */
  private checkHeader(header: FrameHeader): string | undefined {
    if (header.bodyBytes > this.options.frameBodyBytesMax) return `frame body of ${header.bodyBytes} bytes over the limit`;
    const server = this.options.role === 'server';
    const itemBytes = server ? requestItemBytes(header.op) : responseItemBytes(header.op);
    if (itemBytes === undefined) return `unknown op ${header.op}`;
    if (server && header.status !== 0) return 'request status must be zero';
    if (server && (header.count === 0 || header.count > requestCountMax(header.op))) return `count ${header.count} out of range`;
    if (header.bodyBytes !== header.count * itemBytes) return `count ${header.count} does not match ${header.bodyBytes} body bytes`;
    return undefined;
  }

  private enterFrameHeader(): void {
    this.state = State.frame_header;
    this.scratchNeeded = FRAME_HEADER_BYTES;
    this.scratchFilled = 0;
  }

  private fail(requestId: number, reason: string): void {
    this.state = State.failed;
    this.ready = { kind: 'error', requestId, reason };
  }
}

const EMPTY = Buffer.alloc(0);
