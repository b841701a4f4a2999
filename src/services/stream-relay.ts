import { BadGatewayError, GatewayTimeoutError } from '../errors/gateway-error.js';
import type { AttemptTimeoutReason, TimeoutPhase } from './abort-reasons.js';
import type { AttemptResult } from './attempt-types.js';
import { transportFailure } from './forwarder.js';

/**
 * The end of an OpenAI stream: a `data: [DONE]` line. Matched with the newline before it, so that an
 * answer that merely mentions "[DONE]" (inside a JSON string, where a newline would be escaped) does not
 * end the stream. Both spellings servers use, with and without the space.
 */
const DONE_MARKS = [Buffer.from('\ndata: [DONE]'), Buffer.from('\ndata:[DONE]')] as const;
const LONGEST = DONE_MARKS[0].length;

/**
 * Finds the `data: [DONE]` line in a stream relayed chunk by chunk, unparsed, also when it is split
 * across chunks. Per chunk it costs two byte searches; the few bytes kept from the previous chunk are
 * copied into one reused buffer.
 */
export class DoneDetector {
  /** The last bytes of the previous chunk. Starts as a newline: a stream may open with [DONE] itself. */
  private readonly tail = Buffer.alloc(LONGEST - 1);
  private tailLength = 1;
  private readonly seam = Buffer.alloc(2 * (LONGEST - 1));

  constructor() {
    this.tail[0] = 0x0a;
  }

  /** True when this chunk completes the [DONE] line. */
  feed(chunk: Buffer): boolean {
    if (chunk.includes(DONE_MARKS[0]) || chunk.includes(DONE_MARKS[1])) return true;
    // A mark split across the seam: the previous tail plus the start of this chunk.
    const head = Math.min(chunk.length, LONGEST - 1);
    this.tail.copy(this.seam, 0, 0, this.tailLength);
    chunk.copy(this.seam, this.tailLength, 0, head);
    const seam = this.seam.subarray(0, this.tailLength + head);
    const found = seam.includes(DONE_MARKS[0]) || seam.includes(DONE_MARKS[1]);
    // Keep the last LONGEST - 1 bytes of (tail + chunk) for the next seam.
    if (chunk.length >= LONGEST - 1) {
      chunk.copy(this.tail, 0, chunk.length - (LONGEST - 1));
      this.tailLength = LONGEST - 1;
    } else {
      const keep = Math.min(this.tailLength + chunk.length, LONGEST - 1);
      const fromSeam = seam.length - keep;
      seam.copy(this.tail, 0, fromSeam);
      this.tailLength = keep;
    }
    return found;
  }
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
