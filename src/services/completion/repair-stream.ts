import type { Logger } from '../../observability/logger.js';
import type { AttemptOutcome } from '../../observability/metrics.js';
import { continuationBody, runContinuation } from '../continuation/continuation.js';
import { rewrittenBody } from '../core/request-body.js';
import { SSE_DONE } from '../core/sse.js';
import { noteUsage } from '../streaming/usage.js';
import { tighten } from '../core/timeouts.js';
import { upstreamModelId, type EndpointRegistry } from '../endpoints/registry.js';
import type { Forwarder } from '../forwarder/forwarder.js';
import type { EndpointPicker } from '../selector/picker.js';
import type { RequestRun } from './request-run.js';
import { providerOf, upstreamCall } from '../providers/providers.js';
import { CHAT_PATH } from '../forwarder/upstream-attempt.js';

/** Continuation tries after a stream broke mid-answer. */
const MAX_CONTINUATIONS = 2;

export interface RepairDeps {
  registry: EndpointRegistry;
  forwarder: Forwarder;
  logger: Logger;
  picker: EndpointPicker;
  now: () => number;
  onAttempt?: ((endpoint: string, provider: string, outcome: AttemptOutcome) => void) | undefined;
}

/**
 * A stream broke after its first event reached the client: restart it (nothing but the role had been
 * said) or continue its text, on other endpoints serving the model when there are, else on the same one
 * (at most MAX_CONTINUATIONS tries). True when the client got a complete answer.
 */
export async function repairStream(deps: RepairDeps, run: RequestRun): Promise<boolean> {
  const { req, res, trace } = run;
  const transcript = run.transcript!;
  const { registry, picker } = deps;
  const logger = req.log;
  const broken = trace.endpoint;
  // Endpoints whose provider cannot continue an assistant message (Gemini) are not asked to.
  const cannot = registry.endpoints
    .filter((ep) => !providerOf(ep.config).continues)
    .map((ep) => ep.config.name);
  for (let i = 0; i < MAX_CONTINUATIONS; i++) {
    const mode = transcript.continuation;
    if (!mode) return false;
    if (mode === 'complete') {
      // The answer was whole; only its [DONE] line was lost.
      if (res.writableEnded || res.destroyed) return false;
      res.end(SSE_DONE);
      logger.info({ endpoint: broken }, 'stream broke after its finish_reason: ended with [DONE]');
      return true;
    }
    const endpoint =
      picker.pick({ model: req.model, excluded: [...run.excluded, ...cannot], tried: run.tried }) ??
      // A lone endpoint (or the last one standing) may well answer on a new connection.
      picker.pick({
        model: req.model,
        excluded: [...run.excluded.filter((name) => name !== broken), ...cannot],
        tried: run.tried,
      });
    if (!endpoint) return false;
    let call: ReturnType<typeof upstreamCall>;
    try {
      // An endpoint that knows the model by another id (`modelNames`) is asked by that id.
      const upstreamId = upstreamModelId(endpoint.config, req.model);
      const body =
        mode === 'restart'
          ? upstreamId === undefined
            ? req.body
            : rewrittenBody(req.json, { model: upstreamId })
          : continuationBody(req.json, transcript.text, upstreamId);
      // A provider with its own protocol is asked in it (Anthropic: the assistant text is a prefill).
      call = upstreamCall({
        endpoint: endpoint.config,
        path: (mode === 'restart' ? req.path : undefined) ?? CHAT_PATH,
        body,
        json: () => JSON.parse(body.toString('utf8')) as Record<string, unknown>,
        model: upstreamId ?? req.model,
        stream: true,
        now: deps.now,
      });
    } catch (err) {
      // A request JSON.stringify cannot write again (nested too deep): it cannot be continued.
      logger.warn({ error: (err as Error).message }, 'the request cannot be re-sent for a continuation');
      return false;
    }
    const name = endpoint.config.name;
    run.noteTried(name);
    trace.attempts = (trace.attempts ?? 0) + 1;
    const ticket = registry.health.begin(name, logger);
    // Set before the answer can end: the access line is written as soon as the response closes.
    trace.continuedOn = name;
    run.upstreamStarted();
    const span = req.span?.attempt(name, new URL(endpoint.config.url).host, trace.attempts);
    const ended = (outcome: AttemptOutcome) => {
      run.upstreamEnded();
      deps.onAttempt?.(name, endpoint.config.provider, outcome);
      span?.end(outcome);
    };
    let result;
    try {
      result = await runContinuation({
        endpoint: endpoint.config,
        forwarder: deps.forwarder,
        timeouts: tighten(endpoint.config.timeouts, req.timeouts),
        headers: span ? { ...req.headers, traceparent: span.traceparent } : req.headers,
        body: call.body,
        path: call.path,
        answer: call.answer,
        hideUsage: run.hideUsage,
        onUsage: (usage) => noteUsage(run.trace, usage),
        res,
        transcript,
        mode,
        lifetime: run.lifetime,
        now: deps.now,
      });
    } catch (err) {
      ended('cancelled');
      trace.continuedOn = undefined;
      registry.health.release(ticket);
      throw err;
    }
    ended(result.type === 'done' ? 'success' : 'stream_error');
    if (result.type === 'done') {
      registry.health.success(ticket, { ttfbMs: result.ttfbMs });
      logger.info(
        { endpoint: name, mode, chars: transcript.text.length },
        mode === 'restart'
          ? 'broken stream restarted (nothing but the role had reached the client)'
          : 'broken stream continued',
      );
      return true;
    }
    trace.continuedOn = undefined;
    const message = result.type === 'failed' ? result.message : result.error.message;
    registry.health.failure(ticket, 'stream-error', message);
    run.exclude(name);
    logger.warn({ endpoint: name, mode, error: message }, 'stream continuation failed');
  }
  return false;
}
