import { pipeline, type Readable } from 'node:stream';
import zlib from 'node:zlib';
import { AttemptTimeoutReason, HedgeLostReason } from './abort-reasons.js';
import { claimCommit, type AttemptInput, type AttemptResult } from './attempt-types.js';
import type { UpstreamResponse } from './forwarder.js';
import { transportFailure } from './forwarder.js';
import { sendJsonAnswer } from './json-answer.js';
import { PhaseTimer } from './phase-timer.js';
import { discardBody, readBody } from './read-body.js';
import { parseRetryAfterMs, type AttemptFailure } from './retry-policy.js';
import { relayStream } from './stream-relay.js';
import { parseUpstreamError } from './upstream-error.js';

export type { AttemptInput, AttemptResult, CommitState } from './attempt-types.js';

/** Error bodies are read only this far: enough for any real message, bounded against a hostile upstream. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** A non-streamed answer larger than this is refused rather than buffered. */
const MAX_JSON_ANSWER_BYTES = 64 * 1024 * 1024;

/**
 * One attempt on one endpoint: send, wait for the first byte under the first-byte timeout, then commit
 * and relay (streams) or check and send (JSON). Rejects only with the parent signal's reason (client
 * gone, request deadline).
 */
export async function runAttempt(input: AttemptInput): Promise<AttemptResult> {
  const { endpoint, signal, now, timeouts } = input;
  const controller = new AbortController();
  const onParentAbort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', onParentAbort, { once: true });
  input.cancel = () => controller.abort(new HedgeLostReason());
  const timer = new PhaseTimer(controller);
  timer.arm('first-byte', timeouts.firstByteMs);
  // The request's own deadline already covers an endpoint total that is not shorter than it.
  const totalTimer =
    timeouts.totalMs < input.requestTotalMs
      ? setTimeout(
          () => controller.abort(new AttemptTimeoutReason('attempt-total', timeouts.totalMs)),
          timeouts.totalMs,
        )
      : undefined;
  const failed = (failure: AttemptFailure): AttemptResult => ({ type: 'failed', failure });
  const startedAt = now();
  let upstream: UpstreamResponse | undefined;
  let body: Readable | undefined;
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
      return failed(beforeCommitFailure(err, controller.signal));
    }
    const { statusCode, headers } = upstream;
    body = decoded(upstream);
    if (!body)
      return failed({
        kind: 'bad-response',
        message: `unsupported content-encoding ${String(headers['content-encoding'])}`,
      });

    if (statusCode < 200 || statusCode >= 300) {
      let text: string;
      try {
        // Some servers echo the key they were sent in their error text: it must go no further.
        text = redactSecret(await readBody(body, MAX_ERROR_BODY_BYTES, 'truncate'), endpoint.config.apiKey);
      } catch (err) {
        return failed(beforeCommitFailure(err, controller.signal));
      }
      return failed({
        kind: 'http',
        status: statusCode,
        retryAfterMs: parseRetryAfterMs(headers, Date.now()),
        message: `HTTP ${statusCode}: ${describeStatus(statusCode, text, headers.location)}`,
        body: text,
      });
    }

    const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let first: IteratorResult<Buffer>;
    try {
      first = await chunks.next();
    } catch (err) {
      return failed(beforeCommitFailure(err, controller.signal));
    }
    if (first.done) return failed({ kind: 'bad-response', message: 'upstream sent an empty answer' });
    const ttfbMs = now() - startedAt;
    const contentType = String(headers['content-type'] ?? 'application/json');

    if (contentType.includes('text/event-stream')) {
      const outcome = await relayStream(input, first.value, chunks, timer, controller);
      if (outcome) return outcome;
    } else {
      // Buffered (answers are small): a truncated or garbled answer can still be retried elsewhere.
      timer.arm('idle', timeouts.idleMs);
      const parts = [first.value];
      let size = first.value.length;
      try {
        for (let r = await chunks.next(); !r.done; r = await chunks.next()) {
          size += r.value.length;
          if (size > MAX_JSON_ANSWER_BYTES)
            return failed({ kind: 'bad-response', message: 'answer larger than 64 MiB' });
          parts.push(r.value);
          timer.arm('idle', timeouts.idleMs);
        }
      } catch (err) {
        return failed(beforeCommitFailure(err, controller.signal));
      }
      const answer = Buffer.concat(parts);
      let json: unknown;
      try {
        json = JSON.parse(answer.toString('utf8'));
      } catch {
        return failed({
          kind: 'bad-response',
          message: `upstream answered ${statusCode} with a body that is not JSON (${contentType})`,
        });
      }
      if (!claimCommit(input)) return { type: 'lost' };
      sendJsonAnswer(input, statusCode, 'application/json', answer, json);
    }
    return { type: 'done', status: statusCode, ttfbMs, latencyMs: now() - startedAt };
  } finally {
    timer.clear();
    clearTimeout(totalTimer);
    signal.removeEventListener('abort', onParentAbort);
    if (upstream) discardBody(upstream.body);
    if (body) discardBody(body);
  }
}

/** The body with its content-encoding undone (the gateway asks for identity, not every server obeys). */
function decoded(upstream: UpstreamResponse): Readable | undefined {
  const encoding = String(upstream.headers['content-encoding'] ?? 'identity')
    .trim()
    .toLowerCase();
  const decoder =
    encoding === 'identity' || encoding === ''
      ? undefined
      : encoding === 'gzip' || encoding === 'x-gzip'
        ? zlib.createGunzip()
        : encoding === 'deflate'
          ? zlib.createInflate()
          : encoding === 'br'
            ? zlib.createBrotliDecompress()
            : null;
  if (decoder === undefined) return upstream.body;
  if (decoder === null) return undefined;
  return pipeline(upstream.body, decoder, () => undefined);
}

function describeStatus(status: number, text: string, location: string | string[] | undefined): string {
  if (status === 401 || status === 403) return 'the upstream rejected the gateway credentials';
  if (status >= 300 && status < 400) {
    return `redirect to ${String(location ?? 'an unknown location')} (fix the endpoint url)`;
  }
  return parseUpstreamError(status, text).message;
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

function redactSecret(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('[redacted]') : text;
}
