import { BadGatewayError, GatewayTimeoutError } from '../errors/gateway-error.js';
import type { AttemptTimeoutReason, TimeoutPhase } from './abort-reasons.js';
import type { AttemptResult } from './attempt-types.js';
import { transportFailure } from './forwarder.js';

/**
 * The end of an OpenAI stream: a `data: [DONE]` line (also `data:[DONE]`, which some servers send).
 * Only the line counts: an answer that merely mentions "[DONE]" inside its JSON does not end the stream.
 */
const TOKEN = Buffer.from('[DONE]');
const LF = 0x0a;
const CR = 0x0d;
/** Bytes before the token that can belong to its line: a line break, `data:` and one space. */
const LOOKBACK = 7;

/**
 * Finds the `data: [DONE]` line in a stream relayed chunk by chunk, unparsed, also when it is split
 * across chunks. One native search per chunk (the line is at the end of the last event, hence
 * lastIndexOf) and a few byte comparisons; the previous chunk is kept by reference for the bytes
 * before a token at the start of a chunk, and copied only when chunks are tinier than a line.
 */
export class DoneDetector {
  /** The end of what came before this chunk (at least KEEP bytes once there are that many). */
  private before: Buffer = EMPTY;
  /** Bytes of the stream before this chunk. */
  private offset = 0;
  /** The last chunk ended right after a `data: [DONE]`: a line break next completes the line. */
  private tokenAtEnd = false;

  /** True when this chunk completes the [DONE] line. */
  feed(chunk: Buffer): boolean {
    const found = this.search(chunk);
    this.offset += chunk.length;
    this.before = chunk.length >= KEEP ? chunk : Buffer.concat([this.before, chunk]).subarray(-KEEP);
    return found;
  }

  /** The stream ended: true if its last line was `data: [DONE]` without a line break after it. */
  endsWithDone(): boolean {
    return this.tokenAtEnd;
  }

  private search(chunk: Buffer): boolean {
    if (this.tokenAtEnd) {
      this.tokenAtEnd = false;
      if (chunk[0] === LF || chunk[0] === CR) return true;
    }
    const last = chunk.lastIndexOf(TOKEN);
    if (last >= 0) {
      if (isDoneLine(chunk, last, this.before, this.offset)) {
        // Whether the line goes on is only known from the next byte.
        if (last + TOKEN.length < chunk.length) return true;
        this.tokenAtEnd = true;
        return false;
      }
      // The last mention is inside an answer: look at the earlier ones too (rare).
      for (let at = chunk.indexOf(TOKEN); at >= 0 && at < last; at = chunk.indexOf(TOKEN, at + 1)) {
        if (isDoneLine(chunk, at, this.before, this.offset)) return true;
      }
      return false;
    }
    // The token split across the seam: this chunk starts with the end of "[DONE]" (rare).
    const first = chunk[0];
    if (this.offset === 0 || first === undefined || first === TOKEN[0] || !TOKEN.includes(first))
      return false;
    const previous = this.before.subarray(-KEEP);
    // The token ends within the first 5 bytes; the 6th tells whether its line ends there.
    const seam = Buffer.concat([previous, chunk.subarray(0, TOKEN.length)]);
    for (let at = seam.indexOf(TOKEN); at >= 0; at = seam.indexOf(TOKEN, at + 1)) {
      const spans = at < previous.length && at + TOKEN.length > previous.length;
      if (!spans || !isDoneLine(seam, at, EMPTY, this.offset - previous.length)) continue;
      if (at + TOKEN.length < seam.length) return true;
      this.tokenAtEnd = chunk.length === at + TOKEN.length - previous.length;
      return false;
    }
    return false;
  }
}

const EMPTY = Buffer.alloc(0);
/** Bytes kept from before a chunk: enough for a token split across the seam and its line before it. */
const KEEP = LOOKBACK + TOKEN.length - 1;

/**
 * Whether the token at `at` in `buf` is a whole `data: [DONE]` line: after it a line break (or the end
 * of what has come so far, to be decided by what comes next), before it `data:`, at most one space, and the start of a line or
 * of the stream. `buf` starts `offset` bytes into the stream; the bytes just before it are `before`.
 */
function isDoneLine(buf: Buffer, at: number, before: Buffer, offset: number): boolean {
  const after = buf[at + TOKEN.length];
  if (after !== undefined && after !== LF && after !== CR) return false;
  /** The byte at `i` (negative: from before), or -1 before the start of the stream. */
  const byteAt = (i: number): number =>
    i >= 0 ? buf[i]! : offset + i < 0 ? -1 : (before[before.length + i] ?? -2);
  let i = at - 1;
  if (byteAt(i) === 0x20) i--;
  // "data:" backwards
  if (byteAt(i) !== 0x3a || byteAt(i - 1) !== 0x61 || byteAt(i - 2) !== 0x74) return false;
  if (byteAt(i - 3) !== 0x61 || byteAt(i - 4) !== 0x64) return false;
  const lineStart = byteAt(i - 5);
  return lineStart === LF || lineStart === CR || lineStart === -1;
}

const AFTER_COMMIT_TIMEOUTS: Record<TimeoutPhase, { code: string; message: (seconds: number) => string }> = {
  idle: {
    code: 'upstream_idle_timeout',
    message: (s) => `The model server stopped sending data for ${s} s; the answer is incomplete.`,
  },
  throughput: {
    code: 'upstream_too_slow',
    message: (s) =>
      `The model server fell below the minimum throughput over ${s} s; the answer is incomplete.`,
  },
  'attempt-total': {
    code: 'request_timeout',
    message: () => 'The answer took longer than the endpoint timeout allows; the answer is incomplete.',
  },
  'first-byte': {
    code: 'first_byte_timeout',
    message: (s) => `The model server did not answer within ${s} s.`,
  },
};

/** A timeout after commit: the client's stream must end with this error. */
export function brokenByTimeout(reason: AttemptTimeoutReason): AttemptResult {
  const { code, message } = AFTER_COMMIT_TIMEOUTS[reason.phase];
  return {
    type: 'broken',
    kind: 'timeout',
    error: new GatewayTimeoutError(message(Math.round(reason.timeoutMs / 1000)), code),
  };
}

/** The upstream connection failed after commit. */
export function brokenByTransport(err: unknown): AttemptResult {
  return {
    type: 'broken',
    kind: 'stream-error',
    error: new BadGatewayError(
      `The connection to the model server was lost mid-answer (${transportFailure(err).message}); the answer is incomplete.`,
      'upstream_stream_error',
    ),
  };
}

/** The upstream ended its response cleanly but without [DONE]: the answer is cut. */
export function brokenByTruncation(): AttemptResult {
  return {
    type: 'broken',
    kind: 'stream-error',
    error: new BadGatewayError(
      'The model server closed the stream before the answer was complete.',
      'upstream_stream_truncated',
    ),
  };
}
