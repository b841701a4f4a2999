import { BadGatewayError, GatewayTimeoutError } from '../errors/gateway-error.js';
import { AttemptTimeoutReason, ClientClosedReason, type TimeoutPhase } from './abort-reasons.js';
import { claimCommit, gatewayHeaders, type AttemptInput, type AttemptResult } from './attempt-types.js';
import { SSE_HEADERS, type ClientResponse } from './client-response.js';
import { transportFailure } from './forwarder.js';
import type { PhaseTimer } from './phase-timer.js';

/**
 * The end of an OpenAI stream: a `data: [DONE]` line. Matched with the newline before it, so that an
 * answer that merely mentions "[DONE]" (inside a JSON string, where a newline would be escaped) does not
 * end the stream. Both spellings servers use, with and without the space.
 */
const DONE_MARKS = [Buffer.from('\ndata: [DONE]'), Buffer.from('\ndata:[DONE]')];
const CARRY = DONE_MARKS[0]!.length - 1;

/**
 * Commits and relays an SSE body chunk by chunk, unparsed. The answer is complete when `data: [DONE]`
 * has been relayed: the response ends right there. Anything else (reset, stall, too slow, a clean close
 * without [DONE]) ends the client's stream with an error event, never a fake clean end.
 */
export async function relayStream(
  input: AttemptInput,
  first: Buffer,
  chunks: AsyncIterator<Buffer>,
  timer: PhaseTimer,
  controller: AbortController,
): Promise<AttemptResult | undefined> {
  const { signal } = controller;
  const { res } = input;
  const { idleMs, minBytesPerSecond, throughputWindowMs } = input.timeouts;
  if (!claimCommit(input)) return { type: 'lost' };
  if (!res.headersSent) res.writeHead(200, { ...SSE_HEADERS, ...gatewayHeaders(input) });

  let windowBytes = 0;
  // After the first byte, a stream slower than the minimum over a whole window is as good as stalled.
  const throughput =
    minBytesPerSecond > 0
      ? setInterval(() => {
          if (windowBytes < (minBytesPerSecond * throughputWindowMs) / 1000) {
            controller.abort(new AttemptTimeoutReason('throughput', throughputWindowMs));
          }
          windowBytes = 0;
        }, throughputWindowMs)
      : undefined;
  // The last bytes of the previous chunk, so that a [DONE] split across chunks is still seen.
  // Starts as a newline: a stream may open with the [DONE] line itself.
  let carry: Buffer = Buffer.from('\n');
  let chunk: Buffer | undefined = first;
  try {
    while (chunk !== undefined) {
      if (res.writableEnded || res.destroyed) throw new ClientClosedReason();
      windowBytes += chunk.length;
      input.transcript?.feed(chunk);
      const done = containsDone(carry, chunk);
      if (done) {
        res.end(chunk);
        return undefined;
      }
      carry =
        chunk.length >= CARRY
          ? chunk.subarray(chunk.length - CARRY)
          : Buffer.concat([carry, chunk]).subarray(-CARRY);
      if (!res.write(chunk)) {
        timer.clear();
        await drained(res, signal);
      }
      timer.arm('idle', idleMs);
      const r = await chunks.next();
      chunk = r.done ? undefined : r.value;
    }
  } catch (err) {
    if (err instanceof ClientClosedReason) throw err;
    return afterCommitFailure(err, signal);
  } finally {
    clearInterval(throughput);
  }
  return {
    type: 'broken',
    kind: 'stream-error',
    error: new BadGatewayError(
      'The model server closed the stream before the answer was complete.',
      'upstream_stream_truncated',
    ),
  };
}

function containsDone(carry: Buffer, chunk: Buffer): boolean {
  for (const mark of DONE_MARKS) if (chunk.includes(mark)) return true;
  const seam = Buffer.concat([carry, chunk.subarray(0, CARRY)]);
  return DONE_MARKS.some((mark) => seam.includes(mark));
}

function drained(res: ClientResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      res.removeListener('drain', done);
      res.removeListener('close', done);
      signal.removeEventListener('abort', done);
      if (signal.aborted) reject(signal.reason as Error);
      else resolve();
    };
    res.once('drain', done);
    res.once('close', done);
    signal.addEventListener('abort', done, { once: true });
  });
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

function afterCommitFailure(err: unknown, signal: AbortSignal): AttemptResult {
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof AttemptTimeoutReason) {
      const { code, message } = AFTER_COMMIT_TIMEOUTS[reason.phase];
      return {
        type: 'broken',
        kind: 'timeout',
        error: new GatewayTimeoutError(message(Math.round(reason.timeoutMs / 1000)), code),
      };
    }
    throw reason;
  }
  const failure = transportFailure(err);
  return {
    type: 'broken',
    kind: 'stream-error',
    error: new BadGatewayError(
      `The connection to the model server was lost mid-answer (${failure.message}); the answer is incomplete.`,
      'upstream_stream_error',
    ),
  };
}
