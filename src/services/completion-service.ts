import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigSource } from '../config/config-store.js';
import {
  BadGatewayError,
  type GatewayError,
  GatewayTimeoutError,
  ModelNotFoundError,
  NoEndpointAvailableError,
} from '../errors/gateway-error.js';
import type { Logger } from '../observability/logger.js';
import { ClientClosedReason, DeadlineReason } from './abort-reasons.js';
import { SSE_HEADERS, SSE_HEARTBEAT, type ClientResponse } from './client-response.js';
import type { Endpoint, EndpointRegistry } from './endpoint-registry.js';
import type { Forwarder } from './forwarder.js';
import {
  MAX_WAIT_FOR_RECOVERY_MS,
  DEFAULT_COOLDOWN_MS,
  backoffMs,
  decide,
  type AttemptFailure,
} from './retry-policy.js';
import { orderByLeastOutstanding, orderByPriorityAndWeight } from './selector.js';
import { runAttempt } from './upstream-attempt.js';
import { upstreamRequestError } from './upstream-error.js';

export interface CompletionRequest {
  model: string;
  stream: boolean;
  /** The client's body, byte for byte: forwarded untouched. */
  body: Buffer;
  /** Client headers that may go upstream (already stripped of credentials and hop-by-hop headers). */
  headers: Record<string, string>;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

/** What happened, for the access log and response headers. */
export interface CompletionTrace {
  endpoint?: string;
  attempts: number;
  ttfbMs?: number;
  upstreamStatus?: number;
}

export interface CompletionServiceDeps {
  config: ConfigSource;
  registry: EndpointRegistry;
  forwarder: Forwarder;
  logger: Logger;
  /** Resolves once every endpoint has been asked for its models at least once (each ask is bounded). */
  initialDiscovery: () => Promise<void>;
  random: () => number;
  now: () => number;
}

interface FailedAttempt {
  endpoint: string;
  failure: AttemptFailure;
}

/**
 * Routes one chat completion: picks endpoints by priority and weight, retries and fails over before the
 * first byte reaches the client, relays the answer, and keeps endpoint health up to date.
 */
export class CompletionService {
  /** Requests inside complete() right now, upstream work included. */
  active = 0;

  constructor(private readonly deps: CompletionServiceDeps) {}

  async complete(req: CompletionRequest, res: ClientResponse, trace: CompletionTrace): Promise<void> {
    const { registry, now } = this.deps;
    const config = this.deps.config.current;
    if (registry.serving(req.model).length === 0 && registry.hasUnknownModels()) {
      await this.deps.initialDiscovery();
    }
    if (registry.serving(req.model).length === 0) throw new ModelNotFoundError(req.model);

    const requestStartedAt = now();
    const totalMs = config.routing.timeouts.totalMs;
    const controller = new AbortController();
    const onClientAbort = () => controller.abort(new ClientClosedReason());
    if (req.signal.aborted) throw new ClientClosedReason();
    req.signal.addEventListener('abort', onClientAbort, { once: true });
    const deadline = setTimeout(() => controller.abort(new DeadlineReason(totalMs)), totalMs);
    // The body is JSON whatever the client's content-type said (curl -d sends form encoding).
    const upstreamRequest = { ...req, headers: { ...req.headers, 'content-type': 'application/json' } };
    const state: { committed: boolean; ttfbMs?: number } = { committed: false };
    const heartbeat = req.stream ? this.startHeartbeat(res, state) : undefined;
    this.active++;
    try {
      await this.attemptLoop(upstreamRequest, res, trace, {
        signal: controller.signal,
        state,
        requestStartedAt,
      });
    } catch (err) {
      if (err instanceof DeadlineReason) {
        throw new GatewayTimeoutError(
          `The request did not complete within ${Math.round(totalMs / 1000)} s.`,
          'request_timeout',
        );
      }
      throw err;
    } finally {
      this.active--;
      trace.ttfbMs = state.ttfbMs;
      clearTimeout(deadline);
      if (heartbeat) clearInterval(heartbeat);
      req.signal.removeEventListener('abort', onClientAbort);
    }
  }

  private async attemptLoop(
    req: CompletionRequest,
    res: ClientResponse,
    trace: CompletionTrace,
    ctx: { signal: AbortSignal; state: { committed: boolean; ttfbMs?: number }; requestStartedAt: number },
  ): Promise<void> {
    const { registry, now, random, logger } = this.deps;
    const { maxAttempts } = this.deps.config.current.routing;
    const excluded = new Set<string>();
    const tried = new Set<string>();
    const failures: FailedAttempt[] = [];
    let backoffNext = false;

    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      let endpoint = this.pick(req.model, excluded, tried);
      if (!endpoint) {
        const waitMs = this.msUntilRecovery(req.model, excluded);
        if (waitMs === undefined || waitMs > MAX_WAIT_FOR_RECOVERY_MS) break;
        await sleep(waitMs, undefined, { signal: ctx.signal }).catch(() => rethrowReason(ctx.signal));
        endpoint = this.pick(req.model, excluded, tried);
        if (!endpoint) break;
      } else if (backoffNext) {
        await sleep(backoffMs(attempt - 1, random), undefined, { signal: ctx.signal }).catch(() =>
          rethrowReason(ctx.signal),
        );
      }

      const name = endpoint.config.name;
      trace.attempts = attempt;
      trace.endpoint = name;
      tried.add(name);
      const ticket = registry.health.begin(name);
      let result;
      try {
        result = await runAttempt({
          endpoint,
          attempt,
          body: req.body,
          headers: req.headers,
          res,
          forwarder: this.deps.forwarder,
          signal: ctx.signal,
          now,
          requestStartedAt: ctx.requestStartedAt,
          state: ctx.state,
        });
      } catch (err) {
        registry.health.release(ticket);
        throw err;
      }

      if (result.type === 'done') {
        trace.upstreamStatus = 200;
        registry.health.success(ticket, { latencyMs: result.latencyMs, ttfbMs: result.ttfbMs });
        return;
      }
      if (result.type === 'broken') {
        registry.health.failure(ticket, result.kind, result.error.message);
        logger.warn({ endpoint: name, code: result.error.code }, 'upstream failed after the answer started');
        throw result.error;
      }

      const failure = result.failure;
      if (failure.kind === 'http') trace.upstreamStatus = failure.status;
      const decision = decide(failure);
      if (decision.action === 'return') {
        registry.health.success(ticket);
        throw upstreamRequestError(
          (failure as { status: number }).status,
          (failure as { body: string }).body,
        );
      }
      failures.push({ endpoint: name, failure });
      if (decision.exclude) excluded.add(name);
      backoffNext = decision.backoff;
      switch (decision.health) {
        case 'cooldown':
          registry.health.rateLimited(
            ticket,
            (failure.kind === 'http' ? failure.retryAfterMs : undefined) ?? DEFAULT_COOLDOWN_MS,
          );
          break;
        case 'model-missing':
          registry.health.noteModelMissing(ticket, req.model);
          registry.removeModel(endpoint, req.model);
          break;
        case 'misconfigured':
          registry.health.failure(ticket, 'misconfigured', failure.message);
          logger.error(
            { endpoint: name, status: failure.kind === 'http' ? failure.status : undefined },
            'upstream rejected the gateway credentials: check the apiKey configured for this endpoint',
          );
          break;
        case 'failure':
          registry.health.failure(ticket, failureKind(failure), failure.message);
          break;
      }
      logger.debug({ endpoint: name, attempt, failure: failure.message }, 'attempt failed, trying next');
    }
    throw this.exhausted(req.model, failures, excluded);
  }

  /** The next endpoint to try: untried ones first, by priority then weight; then already-tried ones. */
  private pick(
    model: string,
    excluded: ReadonlySet<string>,
    tried: ReadonlySet<string>,
  ): Endpoint | undefined {
    const now = this.deps.now();
    const usable = this.deps.registry
      .serving(model)
      .filter(
        (ep) => !excluded.has(ep.config.name) && ep.health.availableAt(now, ep.config.maxConcurrent) <= now,
      );
    const untried = usable.filter((ep) => !tried.has(ep.config.name));
    const pool = untried.length > 0 ? untried : usable;
    const candidates = pool.map((ep) => ({
      ep,
      priority: ep.config.priority,
      weight: ep.config.weight,
      inFlight: ep.health.inFlight,
      ewmaTtfbMs: ep.health.ewmaTtfbMs,
    }));
    const order =
      this.deps.config.current.routing.strategy === 'least-outstanding'
        ? orderByLeastOutstanding(candidates, this.deps.random)
        : orderByPriorityAndWeight(candidates, this.deps.random);
    return order[0]?.ep;
  }

  /** Milliseconds until some not-excluded, non-drained endpoint of the model may take a request. */
  private msUntilRecovery(model: string, excluded: ReadonlySet<string>): number | undefined {
    const now = this.deps.now();
    let soonest: number | undefined;
    for (const ep of this.deps.registry.serving(model)) {
      if (excluded.has(ep.config.name) || !(ep.config.weight > 0)) continue;
      const at = ep.health.availableAt(now, ep.config.maxConcurrent);
      soonest = soonest === undefined ? at : Math.min(soonest, at);
    }
    return soonest === undefined ? undefined : Math.max(0, soonest - now);
  }

  private exhausted(model: string, failures: FailedAttempt[], excluded: ReadonlySet<string>): GatewayError {
    const last = failures.at(-1);
    const summary = failures.map((f) => `${f.endpoint}: ${f.failure.message}`).join('; ');
    if (last && failures.every((f) => f.failure.kind === 'http' && f.failure.status === 404)) {
      return new ModelNotFoundError(model);
    }
    if (last?.failure.kind === 'http' && last.failure.status !== 429) {
      return new BadGatewayError(
        `No endpoint could answer for model '${model}'; upstream errors: ${summary}`,
        last.failure.status === 401 || last.failure.status === 403 ? 'upstream_auth_error' : 'upstream_error',
      );
    }
    const waitMs = this.msUntilRecovery(model, excluded) ?? 1_000;
    const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
    const detail = summary ? `; ${summary}` : ': every endpoint is unavailable, drained or cooling down';
    return new NoEndpointAvailableError(
      `No endpoint is available for model '${model}' right now${detail}. Retry in ${retryAfterSeconds} s.`,
      retryAfterSeconds,
    );
  }

  /**
   * While a stream waits for its first token, SSE comments keep idle proxies (Akash ingress closes a
   * response idle for 60 s) from cutting it. Comments are not content: failover stays invisible.
   */
  private startHeartbeat(res: ClientResponse, state: { committed: boolean }): NodeJS.Timeout {
    return setInterval(() => {
      if (state.committed || res.writableEnded || res.destroyed) return;
      if (!res.headersSent) res.writeHead(200, { ...SSE_HEADERS });
      res.write(SSE_HEARTBEAT);
    }, this.deps.config.current.server.heartbeatIntervalMs);
  }
}

function failureKind(failure: AttemptFailure): 'connect' | 'timeout' | 'server-error' | 'empty-response' {
  switch (failure.kind) {
    case 'connect':
      return 'connect';
    case 'timeout':
      return 'timeout';
    case 'empty-response':
      return 'empty-response';
    case 'http':
      return 'server-error';
  }
}

function rethrowReason(signal: AbortSignal): never {
  throw signal.reason as Error;
}
