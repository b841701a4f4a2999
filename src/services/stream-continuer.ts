import type { Logger } from '../observability/logger.js';
import type { ClientResponse } from './client-response.js';
import type { CompletionRequest, CompletionTrace } from './completion-service.js';
import { continuationBody, runContinuation } from './continuation.js';
import type { EndpointPicker } from './endpoint-picker.js';
import type { EndpointRegistry } from './endpoint-registry.js';
import type { Forwarder } from './forwarder.js';
import { addOnce, type PoolContext, type PoolState } from './pool-runner.js';
import { tighten } from './timeouts.js';

/** Continuation tries after a stream broke mid-answer. */
const MAX_CONTINUATIONS = 2;

export interface ContinuerDeps {
  registry: EndpointRegistry;
  forwarder: Forwarder;
  logger: Logger;
  picker: EndpointPicker;
  now: () => number;
}

/**
 * A text stream broke after content reached the client: continue it on other endpoints serving the
 * model (at most MAX_CONTINUATIONS tries). True when the client got a complete answer.
 */
export async function continueStream(
  deps: ContinuerDeps,
  req: CompletionRequest,
  res: ClientResponse,
  trace: CompletionTrace,
  ctx: PoolContext,
  pool: PoolState,
): Promise<boolean> {
  const transcript = ctx.transcript!;
  const { registry, logger, picker } = deps;
  for (let i = 0; i < MAX_CONTINUATIONS; i++) {
    const endpoint = picker.pick({ model: req.model, excluded: pool.excluded, tried: pool.tried });
    if (!endpoint) return false;
    const name = endpoint.config.name;
    addOnce(pool.tried, name);
    trace.attempts = (trace.attempts ?? 0) + 1;
    const ticket = registry.health.begin(name);
    // Set before the answer can end: the access line is written as soon as the response closes.
    trace.continuedOn = name;
    let result;
    try {
      result = await runContinuation({
        endpoint,
        forwarder: deps.forwarder,
        timeouts: tighten(endpoint.config.timeouts, req.timeouts),
        headers: req.headers,
        body: continuationBody(req.json, transcript.text),
        res,
        transcript,
        lifetime: ctx.lifetime,
        now: deps.now,
      });
    } catch (err) {
      trace.continuedOn = undefined;
      registry.health.release(ticket);
      throw err;
    }
    if (result.type === 'done') {
      registry.health.success(ticket, { ttfbMs: result.ttfbMs });
      logger.info(
        { endpoint: name, chars: transcript.text.length },
        'broken stream continued on another endpoint',
      );
      return true;
    }
    trace.continuedOn = undefined;
    const message = result.type === 'failed' ? result.message : result.error.message;
    registry.health.failure(ticket, 'stream-error', message);
    addOnce(pool.excluded, name);
    logger.warn({ endpoint: name, error: message }, 'stream continuation failed');
  }
  return false;
}
