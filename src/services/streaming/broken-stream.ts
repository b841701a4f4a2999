import { BadGatewayError, GatewayTimeoutError } from '../../errors/gateway-error.js';
import type { AttemptTimeoutReason, TimeoutPhase } from '../core/abort-reasons.js';
import type { ErrorCode } from '../../errors/codes.js';
import type { AttemptResult } from '../core/outcomes.js';

const AFTER_COMMIT_TIMEOUTS: Record<TimeoutPhase, { code: ErrorCode; message: (seconds: number) => string }> =
  {
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
    timeout: reason.phase,
    error: new GatewayTimeoutError(message(Math.round(reason.timeoutMs / 1000)), code),
  };
}

/** The upstream connection failed after commit (`reason`: what failed, in words). */
export function brokenByTransport(reason: string): AttemptResult {
  return {
    type: 'broken',
    kind: 'stream-error',
    error: new BadGatewayError(
      `The connection to the model server was lost mid-answer (${reason}); the answer is incomplete.`,
      'upstream_stream_error',
    ),
  };
}

/** The model server sent an error event after the answer started. */
export function brokenByErrorEvent(message: string): AttemptResult {
  return {
    type: 'broken',
    kind: 'stream-error',
    error: new BadGatewayError(
      `The model server failed mid-answer: ${message}. The answer is incomplete.`,
      'upstream_stream_error',
    ),
  };
}

/** The model server sent something that is not an event stream after the answer started. */
export function brokenByGarbage(message: string): AttemptResult {
  return {
    type: 'broken',
    kind: 'bad-response',
    error: new BadGatewayError(
      `The model server sent an unreadable stream (${message}); the answer is incomplete.`,
      'upstream_invalid_stream',
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
