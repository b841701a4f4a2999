import type { ServerResponse } from 'node:http';
import type { RequestTrace } from '../services/core/request.js';
import { AnswerCapture } from '../services/cache/answer-capture.js';
import { answerOf, replay, type CachedAnswer } from '../services/cache/cached-answer.js';
import type { ResponseCache } from '../services/cache/response-cache.js';
import { setEventStreamHeaders } from '../services/core/sse.js';

/** The header that says what the cache did: `HIT`, `MISS` or `BYPASS`. */
export const X_CACHE = 'x-cache';

/** Whether the client asked for a stream's usage chunk. */
export function asksUsage(json: Readonly<Record<string, unknown>>): boolean {
  const options = json.stream_options;
  return (
    options !== null &&
    typeof options === 'object' &&
    (options as { include_usage?: unknown }).include_usage === true
  );
}

/** Answers from the cache, in the mode the client asked for. */
export function sendHit(
  res: ServerResponse,
  answer: CachedAnswer,
  json: Readonly<Record<string, unknown>>,
  stream: boolean,
): void {
  const { contentType, body } = replay(answer, stream, asksUsage(json));
  res.setHeader(X_CACHE, 'HIT');
  if (stream) setEventStreamHeaders(res);
  else res.setHeader('content-type', contentType);
  res.statusCode = 200;
  res.end(body);
}

/**
 * A miss: the response the services write to, copied, and what stores its answer when it closes, if
 * it is a complete successful one (a 200 written to its end, no error, no stream continued elsewhere).
 */
export function captureForCache(
  cache: ResponseCache,
  key: string,
  res: ServerResponse,
  trace: RequestTrace,
): AnswerCapture {
  const capture = new AnswerCapture(res, cache.maxEntryBytes);
  res.once('close', () => {
    if (!res.writableFinished || res.statusCode !== 200) return;
    if (trace.errorCode !== undefined || trace.continuedOn !== undefined) return;
    const received = capture.received();
    if (!received) return;
    const usage =
      trace.promptTokens === undefined
        ? undefined
        : {
            prompt_tokens: trace.promptTokens,
            completion_tokens: trace.completionTokens ?? 0,
            total_tokens: trace.promptTokens + (trace.completionTokens ?? 0),
          };
    const mode = capture.contentType.includes('text/event-stream') ? 'sse' : 'json';
    const answer = answerOf(mode, received, usage);
    if (answer) cache.store(key, answer);
  });
  return capture;
}
