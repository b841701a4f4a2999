import type { GatewayError } from '../../errors/gateway-error.js';
import type { TimeoutPhase } from './abort-reasons.js';

/** How an attempt failed, as endpoint health counts it. */
export type FailureKind =
  'connect' | 'timeout' | 'server-error' | 'misconfigured' | 'stream-error' | 'bad-response';

/**
 * An attempt that failed before anything reached the client. The retry policy turns it into a
 * decision (the README's outcome table), the exhausted pool into the client's error.
 */
export type AttemptFailure =
  | { kind: 'connect'; code: string; message: string }
  | {
      kind: 'timeout';
      phase: 'connect' | 'first-byte' | 'idle';
      message: string;
      /** The limit that fired (the attempt's total and the minimum throughput report as first-byte or idle). */
      limit?: TimeoutPhase;
    }
  | { kind: 'http'; status: number; retryAfterMs: number | undefined; message: string; body: string }
  /** A 2xx that is not a usable answer: empty, a JSON answer that does not parse, a garbled stream. */
  | { kind: 'bad-response'; message: string }
  /** The model server reported an error in a 2xx answer (an error event in a stream, an error object). */
  | { kind: 'error-event'; message: string };

export type AttemptResult =
  /** The whole answer reached the client. */
  | { type: 'done'; status: number; ttfbMs: number; latencyMs: number }
  /** Failed before commit: the client saw nothing of it, another attempt may follow. */
  | { type: 'failed'; failure: AttemptFailure }
  /** Failed after commit: the client's response is broken and must end with this error. */
  | { type: 'broken'; error: GatewayError; kind: FailureKind; timeout?: TimeoutPhase }
  /** A hedged rival committed first; this attempt stopped without a verdict on its endpoint. */
  | { type: 'lost' };
