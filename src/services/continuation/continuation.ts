import type { AnswerTranslation } from '../providers/provider.js';
/**
 * Mid-stream continuation. When a text stream breaks after content reached the client, the conversation
 * is sent to another endpoint with the partial answer as an assistant prefix to continue
 * (`continue_final_message`, understood by vLLM and SGLang; llama.cpp continues a final assistant
 * message by itself), and the continuation is spliced into the client's stream: no second role delta,
 * the first stream's id/created/model, one finish_reason, one [DONE], usage summed.
 * When nothing but the role had reached the client, the request is sent again as it was (a restart),
 * whatever it asked for (tools, several choices) and also with continuation off: nothing is spliced.
 */
import type { EndpointConfig, Timeouts } from '../../config/types.js';
import { BadGatewayError, type GatewayError } from '../../errors/gateway-error.js';
import { AttemptTimeoutReason } from '../core/abort-reasons.js';
import { drained, type ClientResponse } from '../core/client-response.js';
import { transportFailure, type Forwarder, type UpstreamResponse } from '../forwarder/forwarder.js';
import { CHAT_PATH } from '../forwarder/upstream-attempt.js';
import type { Lifetime } from '../core/lifetime.js';
import { PhaseTimer } from '../core/phase-timer.js';
import { discardBody } from '../forwarder/read-body.js';
import { rewrittenBody } from '../core/request-body.js';
import { SseParser } from '../streaming/sse-parser.js';
import type { Continuation, StreamTranscript } from '../streaming/transcript.js';
import { Splicer } from './splicer.js';

/** A plain text stream (no tools, one choice): its text can be continued by another endpoint. */
export function continuationEligible(json: Readonly<Record<string, unknown>>): boolean {
  if (json.stream !== true) return false;
  if (json.tools !== undefined || json.functions !== undefined) return false;
  const n = json.n;
  return n === undefined || n === null || n === 1;
}

/** The request again, with the text the client already has as a final assistant message to continue. */
export function continuationBody(
  json: Readonly<Record<string, unknown>>,
  partial: string,
  /** The continuing endpoint's own id for the model (`modelNames`), when it differs. */
  upstreamModel?: string,
): Buffer {
  const messages = Array.isArray(json.messages) ? [...(json.messages as unknown[])] : [];
  const last = messages.at(-1) as { role?: unknown; content?: unknown } | undefined;
  if (last?.role === 'assistant' && typeof last.content === 'string') {
    // The client prefilled the answer itself: the partial answer continues that message.
    messages[messages.length - 1] = { ...last, content: last.content + partial };
  } else {
    messages.push({ role: 'assistant', content: partial });
  }
  return rewrittenBody(json, {
    ...(upstreamModel === undefined ? {} : { model: upstreamModel }),
    messages,
    stream: true,
    continue_final_message: true,
    add_generation_prompt: false,
  });
}

export type ContinuationResult =
  | { type: 'done'; ttfbMs: number }
  /** Nothing reached the client: another endpoint may try. */
  | { type: 'failed'; message: string }
  /** Part of the continuation reached the client, then it broke too. */
  | { type: 'broken'; error: GatewayError };

/** One continuation attempt on one endpoint, spliced into the already committed client stream. */
export async function runContinuation(args: {
  /** The upstream path of a restart (the request's route); a continuation is always a chat. */
  path?: string | undefined;
  /** A provider with its own protocol: its stream turned into OpenAI's events. */
  answer?: AnswerTranslation | undefined;
  endpoint: EndpointConfig;
  forwarder: Forwarder;
  timeouts: Timeouts;
  headers: Record<string, string>;
  body: Buffer;
  res: ClientResponse;
  transcript: StreamTranscript;
  mode: Continuation;
  lifetime: Lifetime;
  now: () => number;
  /** The usage-only chunk is the gateway's: told to `onUsage`, not relayed. */
  hideUsage?: boolean;
  onUsage?: (usage: unknown) => void;
}): Promise<ContinuationResult> {
  const { res } = args;
  const parent = args.lifetime.signal();
  const signal = parent.signal;
  const controller = new AbortController();
  const onParentAbort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', onParentAbort, { once: true });
  const { timeouts, lifetime } = args;
  // The same limits as any attempt: first byte, idle, minimum throughput, the endpoint's total and the
  // request's deadline.
  const attemptEndsAt = performance.now() + timeouts.totalMs;
  const timer = new PhaseTimer({
    onPhaseTimeout: (reason) => controller.abort(reason),
    onDeadline: () => {
      if (attemptEndsAt < lifetime.deadlineAt)
        controller.abort(new AttemptTimeoutReason('attempt-total', timeouts.totalMs));
      else lifetime.expire();
    },
  });
  timer.arm('first-byte', timeouts.firstByteMs);
  timer.setDeadline(Math.min(attemptEndsAt, lifetime.deadlineAt));
  let windowBytes = 0;
  const throughput =
    timeouts.minBytesPerSecond > 0
      ? setInterval(() => {
          if (windowBytes < (timeouts.minBytesPerSecond * timeouts.throughputWindowMs) / 1000)
            controller.abort(new AttemptTimeoutReason('throughput', timeouts.throughputWindowMs));
          windowBytes = 0;
        }, timeouts.throughputWindowMs)
      : undefined;
  const startedAt = args.now();
  const splicer = new Splicer(args.transcript, args.mode, args.hideUsage ? args.onUsage : undefined);
  const parser = new SseParser();
  let wrote = false;
  let upstream: UpstreamResponse | undefined;
  const fail = (message: string): ContinuationResult =>
    wrote
      ? {
          type: 'broken',
          error: new BadGatewayError(
            `The continuation broke too (${message}); the answer is incomplete.`,
            'upstream_stream_error',
          ),
        }
      : { type: 'failed', message };
  try {
    upstream = await args.forwarder.send({
      endpoint: args.endpoint,
      method: 'POST',
      path: args.path ?? CHAT_PATH,
      headers: args.headers,
      body: args.body,
      signal: controller.signal,
    });
    if (upstream.statusCode !== 200) return fail(`HTTP ${upstream.statusCode}`);
    if (!String(upstream.headers['content-type'] ?? '').includes('text/event-stream'))
      return fail('not an event stream');
    let ttfbMs: number | undefined;
    for await (const chunk of upstream.body as AsyncIterable<Buffer>) {
      timer.arm('idle', timeouts.idleMs);
      windowBytes += chunk.length;
      ttfbMs ??= args.now() - startedAt;
      for (const data of parser.feed(args.answer ? args.answer.events(chunk) : chunk)) {
        const { out, done } = splicer.payload(data);
        if (out) {
          if (res.writableEnded || res.destroyed) throw signal.reason ?? new Error('client gone');
          wrote = true;
          if (!res.write(out) && !done) {
            // A slow reader: read no more from the upstream until it catches up (not a stall).
            timer.suspend();
            await drained(res);
            timer.arm('idle', timeouts.idleMs);
          }
        }
        if (done) {
          res.end();
          return { type: 'done', ttfbMs };
        }
      }
    }
    return fail('stream closed before [DONE]');
  } catch (err) {
    if (controller.signal.aborted && !(controller.signal.reason instanceof AttemptTimeoutReason))
      throw controller.signal.reason;
    const reason: unknown = controller.signal.reason;
    return fail(
      reason instanceof AttemptTimeoutReason
        ? reason.message
        : err instanceof Error && !('code' in err)
          ? err.message
          : transportFailure(err).message,
    );
  } finally {
    timer.clear();
    clearInterval(throughput);
    signal.removeEventListener('abort', onParentAbort);
    parent.release();
    if (upstream) discardBody(upstream.body);
  }
}
