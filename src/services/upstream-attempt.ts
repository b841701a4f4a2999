import { BadGatewayError, GatewayTimeoutError, type GatewayError } from '../errors/gateway-error.js';
import { AttemptTimeoutReason, type TimeoutPhase } from './abort-reasons.js';
import { SSE_HEADERS, type ClientResponse } from './client-response.js';
import type { Endpoint } from './endpoint-registry.js';
import type { Forwarder, UpstreamResponse } from './forwarder.js';
import { transportFailure } from './forwarder.js';
import type { FailureKind } from './health.js';
import { parseRetryAfterMs, type AttemptFailure } from './retry-policy.js';
import { parseUpstreamError } from './upstream-error.js';
import { readBody } from './read-body.js';

/** Error bodies are read only this far: enough for any real message, bounded against a hostile upstream. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export interface AttemptInput {
  endpoint: Endpoint;
  attempt: number;
  body: Buffer;
  headers: Record<string, string>;
  res: ClientResponse;
  forwarder: Forwarder;
  /** Aborted when the client leaves or the request's deadline passes. */
  signal: AbortSignal;
  now: () => number;
  requestStartedAt: number;
  /** Shared with the heartbeat: set once the first upstream byte has been sent to the client. */
  state: { committed: boolean; ttfbMs?: number };
}

export type AttemptResult =
  /** The whole answer reached the client. */
  | { type: 'done'; ttfbMs: number; latencyMs: number }
  /** Failed before commit: the client saw nothing of it, another attempt may follow. */
  | { type: 'failed'; failure: AttemptFailure }
  /** Failed after commit: the client's response is broken and must end with this error. */
  | { type: 'broken'; error: GatewayError; kind: FailureKind };

/**
 * One attempt on one endpoint: send, wait for the first byte under the first-byte timeout, then commit
 * and relay every chunk as it arrives under the idle timeout. Rejects only with the parent signal's
 * reason (client gone, request deadline).
 */
export async function runAttempt(input: AttemptInput): Promise<AttemptResult> {
  const { endpoint, signal, now } = input;
  const timeouts = endpoint.config.timeouts;
  const controller = new AbortController();
  const onParentAbort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', onParentAbort, { once: true });
  const timer = new PhaseTimer(controller);
  timer.arm('first-byte', timeouts.firstByteMs);
  const totalTimer = setTimeout(
    () => controller.abort(new AttemptTimeoutReason('attempt-total', timeouts.totalMs)),
    timeouts.totalMs,
  );
  const startedAt = now();
  let upstream: UpstreamResponse | undefined;
  try {
    try {
      upstream = await input.forwarder.send({
        endpoint: endpoint.config,
        method: 'POST',
        path: '/v1/chat/completions',
        headers: input.headers,
        body: input.body,
        signal: controller.signal,
      });
    } catch (err) {
      return { type: 'failed', failure: beforeCommitFailure(err, controller.signal) };
    }

    const { statusCode } = upstream;
    if (statusCode < 200 || statusCode >= 300) {
      let text: string;
      try {
        // Some servers echo the key they were sent in their error text: it must go no further.
        text = redactSecret(
          await readBody(upstream.body, MAX_ERROR_BODY_BYTES, 'truncate'),
          endpoint.config.apiKey,
        );
      } catch (err) {
        return { type: 'failed', failure: beforeCommitFailure(err, controller.signal) };
      }
      const detail =
        statusCode === 401 || statusCode === 403
          ? 'the upstream rejected the gateway credentials'
          : parseUpstreamError(statusCode, text).message;
      return {
        type: 'failed',
        failure: {
          kind: 'http',
          status: statusCode,
          retryAfterMs: parseRetryAfterMs(upstream.headers, Date.now()),
          message: `HTTP ${statusCode}: ${detail}`,
          body: text,
        },
      };
    }

    const chunks = upstream.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let first: IteratorResult<Buffer>;
    try {
      first = await chunks.next();
    } catch (err) {
      return { type: 'failed', failure: beforeCommitFailure(err, controller.signal) };
    }
    if (first.done) {
      return {
        type: 'failed',
        failure: { kind: 'empty-response', message: 'upstream sent an empty response' },
      };
    }
    const ttfbMs = now() - startedAt;
    const contentType = String(upstream.headers['content-type'] ?? 'application/json');

    if (contentType.includes('text/event-stream')) {
      commit(input);
      const broken = await relayStream(input, first.value, chunks, timer, controller.signal);
      if (broken) return broken;
    } else {
      timer.arm('idle', timeouts.idleMs);
      const parts = [first.value];
      try {
        for (let r = await chunks.next(); !r.done; r = await chunks.next()) {
          parts.push(r.value);
          timer.arm('idle', timeouts.idleMs);
        }
      } catch (err) {
        return { type: 'failed', failure: beforeCommitFailure(err, controller.signal) };
      }
      sendJson(input, statusCode, contentType, Buffer.concat(parts));
    }
    return { type: 'done', ttfbMs, latencyMs: now() - startedAt };
  } finally {
    timer.clear();
    clearTimeout(totalTimer);
    signal.removeEventListener('abort', onParentAbort);
    if (upstream && !upstream.body.destroyed) upstream.body.destroy();
  }
}

function commit(input: AttemptInput): void {
  input.state.committed = true;
  input.state.ttfbMs = input.now() - input.requestStartedAt;
  if (!input.res.headersSent) {
    input.res.writeHead(200, {
      ...SSE_HEADERS,
      'x-gateway-endpoint': input.endpoint.config.name,
      'x-gateway-attempts': String(input.attempt),
    });
  }
}

function sendJson(input: AttemptInput, status: number, contentType: string, body: Buffer): void {
  const { res } = input;
  if (res.headersSent) {
    // Heartbeats already opened an event stream: deliver the answer as one event.
    input.state.committed = true;
    input.state.ttfbMs = input.now() - input.requestStartedAt;
    res.write(`data: ${body.toString('utf8').trim()}\n\ndata: [DONE]\n\n`);
    res.end();
    return;
  }
  input.state.committed = true;
  input.state.ttfbMs = input.now() - input.requestStartedAt;
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': String(body.length),
    'x-gateway-endpoint': input.endpoint.config.name,
    'x-gateway-attempts': String(input.attempt),
  });
  res.end(body);
}

/**
 * Relays an SSE body chunk by chunk. The stream is complete only if it ended with `data: [DONE]`;
 * anything else (reset, stall, clean close without [DONE]) is reported to the client as an error event
 * rather than passed on as a clean end.
 */
async function relayStream(
  input: AttemptInput,
  first: Buffer,
  chunks: AsyncIterator<Buffer>,
  timer: PhaseTimer,
  signal: AbortSignal,
): Promise<AttemptResult | undefined> {
  const { res } = input;
  const idleMs = input.endpoint.config.timeouts.idleMs;
  let tail = '';
  let chunk: Buffer | undefined = first;
  try {
    while (chunk !== undefined) {
      tail = (tail + chunk.toString('latin1', Math.max(0, chunk.length - 32))).slice(-32);
      if (!res.write(chunk)) {
        timer.clear();
        await drained(res, signal);
      }
      timer.arm('idle', idleMs);
      const r = await chunks.next();
      chunk = r.done ? undefined : r.value;
    }
  } catch (err) {
    return afterCommitFailure(err, signal);
  }
  if (!/data: ?\[DONE\]\s*$/.test(tail)) {
    return {
      type: 'broken',
      kind: 'stream-error',
      error: new BadGatewayError(
        'The model server closed the stream before the answer was complete.',
        'upstream_stream_truncated',
      ),
    };
  }
  res.end();
  return undefined;
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

/** Before commit: a timeout of this attempt is a failure to retry; a client abort or deadline propagates. */
function beforeCommitFailure(err: unknown, signal: AbortSignal): AttemptFailure {
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof AttemptTimeoutReason) {
      return {
        kind: 'timeout',
        phase: reason.phase === 'idle' ? 'idle' : 'first-byte',
        message: reason.message,
      };
    }
    throw reason;
  }
  return transportFailure(err);
}

function afterCommitFailure(err: unknown, signal: AbortSignal): AttemptResult {
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof AttemptTimeoutReason) {
      const error =
        reason.phase === 'idle'
          ? new GatewayTimeoutError(
              `The model server stopped sending data for ${Math.round(reason.timeoutMs / 1000)} s; the answer is incomplete.`,
              'upstream_idle_timeout',
            )
          : new GatewayTimeoutError(
              'The answer took longer than the endpoint timeout allows.',
              'request_timeout',
            );
      return { type: 'broken', kind: 'timeout', error };
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

function redactSecret(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('[redacted]') : text;
}

/**
 * One re-armable timer per attempt for the current phase (first byte, then idle between chunks).
 * Re-arming the same phase refreshes the existing timer, so a chunk costs no new timer or allocation.
 */
class PhaseTimer {
  private handle: NodeJS.Timeout | undefined;
  private phase: TimeoutPhase | undefined;

  constructor(private readonly controller: AbortController) {}

  arm(phase: TimeoutPhase, timeoutMs: number): void {
    if (this.handle !== undefined && this.phase === phase) {
      this.handle.refresh();
      return;
    }
    this.clear();
    this.phase = phase;
    this.handle = setTimeout(
      () => this.controller.abort(new AttemptTimeoutReason(phase, timeoutMs)),
      timeoutMs,
    );
  }

  clear(): void {
    if (this.handle !== undefined) clearTimeout(this.handle);
    this.handle = undefined;
  }
}
