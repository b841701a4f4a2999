import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigSource } from '../config/config-store.js';
import type { Timeouts } from '../config/types.js';
import { GatewayError, GatewayTimeoutError, ModelNotFoundError } from '../errors/gateway-error.js';
import type { Logger } from '../observability/logger.js';
import { ClientClosedReason, DeadlineReason } from './abort-reasons.js';
import { SSE_HEADERS, SSE_HEARTBEAT, type ClientResponse } from './client-response.js';
import type { EndpointRegistry } from './endpoint-registry.js';
import { EndpointPicker } from './endpoint-picker.js';
import { exhaustedError, type FailedAttempt } from './exhausted-error.js';
import type { Forwarder } from './forwarder.js';
import type { FailureKind } from './health.js';
import {
  MAX_WAIT_FOR_RECOVERY_MS,
  DEFAULT_COOLDOWN_MS,
  backoffMs,
  decide,
  type AttemptFailure,
} from './retry-policy.js';
import { runAttempt, type CommitState } from './upstream-attempt.js';
import { upstreamRequestError } from './upstream-error.js';

export interface CompletionRequest {
  /** The model (or alias) the client asked for. */
  model: string;
  stream: boolean;
  /** The client's body, byte for byte: forwarded untouched unless an alias rewrites `model`. */
  body: Buffer;
  /** The parsed body, for the fields the gateway reads. */
  json: Readonly<Record<string, unknown>>;
  /** Client headers that may go upstream (already stripped of credentials and hop-by-hop headers). */
  headers: Record<string, string>;
  /** Per-request timeout overrides (request headers). */
  timeouts: Partial<Timeouts>;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

/** What happened, for the access log and response headers; filled in as the request goes. */
export interface CompletionTrace {
  endpoint?: string;
  attempts?: number;
  ttfbMs?: number;
  upstreamStatus?: number;
  servedModel?: string;
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

interface RequestContext {
  signal: AbortSignal;
  sessionKey?: string | undefined;
  state: CommitState;
  requestStartedAt: number;
  responseHeaders?: Record<string, string>;
}

/**
 * Routes one chat completion: picks endpoints by priority and weight, retries and fails over before the
 * first byte reaches the client, falls back along an alias chain when a model's whole pool is exhausted,
 * relays the answer, and keeps endpoint health up to date.
 */
export class CompletionService {
  /** Requests inside complete() right now, upstream work included. */
  active = 0;
  private readonly picker: EndpointPicker;

  constructor(private readonly deps: CompletionServiceDeps) {
    this.picker = new EndpointPicker(deps);
  }

  async complete(req: CompletionRequest, res: ClientResponse, trace: CompletionTrace): Promise<void> {
    const { registry, now } = this.deps;
    const config = this.deps.config.current;
    const chain = config.aliases[req.model] ?? [req.model];
    const servedNow = () => chain.some((m) => registry.serving(m).length > 0);
    if (!servedNow() && registry.hasUnknownModels()) await this.deps.initialDiscovery();
    if (!servedNow()) throw new ModelNotFoundError(req.model);

    const requestStartedAt = now();
    const totalMs = req.timeouts.totalMs ?? config.routing.timeouts.totalMs;
    const controller = new AbortController();
    const onClientAbort = () => controller.abort(new ClientClosedReason());
    if (req.signal.aborted) throw new ClientClosedReason();
    req.signal.addEventListener('abort', onClientAbort, { once: true });
    const deadline = setTimeout(() => controller.abort(new DeadlineReason(totalMs)), totalMs);
    // The body is JSON whatever the client's content-type said (curl -d sends form encoding); answers are
    // asked for uncompressed, since they are relayed chunk by chunk.
    const headers = { ...req.headers, 'content-type': 'application/json', 'accept-encoding': 'identity' };
    const state: CommitState = { committed: false };
    const heartbeat = req.stream ? this.startHeartbeat(res, state) : undefined;
    const ctx: RequestContext = {
      signal: controller.signal,
      state,
      requestStartedAt,
      sessionKey: this.sessionKey(req),
    };
    this.active++;
    try {
      let lastError: unknown;
      for (const [i, model] of chain.entries()) {
        if (registry.serving(model).length === 0) continue;
        const fallback = i > 0;
        const body = model === req.model ? req.body : Buffer.from(JSON.stringify({ ...req.json, model }));
        try {
          trace.servedModel = model;
          await this.tryPool({ ...req, model, body, headers }, res, trace, {
            ...ctx,
            responseHeaders: fallback ? { 'x-gateway-fallback-model': model } : undefined,
          });
          return;
        } catch (err) {
          if (state.committed || !poolExhausted(err)) throw err;
          lastError = err;
          this.deps.logger.info(
            { model, alias: req.model },
            'model pool exhausted; trying the next model of the alias',
          );
        }
      }
      throw lastError;
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

  /** Attempts on the endpoints of one model until one answers or the pool is exhausted. */
  private async tryPool(
    req: CompletionRequest,
    res: ClientResponse,
    trace: CompletionTrace,
    ctx: RequestContext,
  ): Promise<void> {
    const { registry, now, random, logger } = this.deps;
    const { maxAttempts } = this.deps.config.current.routing;
    const excluded = new Set<string>();
    const tried = new Set<string>();
    const failures: FailedAttempt[] = [];
    let backoffNext = false;

    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      let endpoint = this.picker.pick({ model: req.model, excluded, tried, sessionKey: ctx.sessionKey });
      if (!endpoint) {
        const waitMs = this.picker.msUntilRecovery(req.model, excluded);
        if (waitMs === undefined || waitMs > MAX_WAIT_FOR_RECOVERY_MS) break;
        await sleep(waitMs, undefined, { signal: ctx.signal }).catch(() => rethrowReason(ctx.signal));
        endpoint = this.picker.pick({ model: req.model, excluded, tried });
        if (!endpoint) break;
      } else if (backoffNext) {
        await sleep(backoffMs(attempt - 1, random), undefined, { signal: ctx.signal }).catch(() =>
          rethrowReason(ctx.signal),
        );
      }

      const name = endpoint.config.name;
      trace.attempts = (trace.attempts ?? 0) + 1;
      trace.endpoint = name;
      tried.add(name);
      const ticket = registry.health.begin(name);
      let result;
      try {
        result = await runAttempt({
          endpoint,
          timeouts: { ...endpoint.config.timeouts, ...req.timeouts },
          attempt: trace.attempts,
          body: req.body,
          headers: req.headers,
          res,
          forwarder: this.deps.forwarder,
          signal: ctx.signal,
          now,
          requestStartedAt: ctx.requestStartedAt,
          state: ctx.state,
          responseHeaders: ctx.responseHeaders,
        });
      } catch (err) {
        registry.health.release(ticket);
        throw err;
      }

      if (result.type === 'done') {
        trace.upstreamStatus = result.status;
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
          failure.kind === 'http' ? failure.status : 400,
          failure.kind === 'http' ? failure.body : '',
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
            {
              endpoint: name,
              status: failure.kind === 'http' ? failure.status : undefined,
              error: failure.message,
            },
            'upstream endpoint is misconfigured (rejected credentials or redirected): check its url and apiKey',
          );
          break;
        case 'failure':
          registry.health.failure(ticket, failureKind(failure), failure.message);
          break;
      }
      logger.debug({ endpoint: name, attempt, failure: failure.message }, 'attempt failed, trying next');
    }
    throw exhaustedError(req.model, failures, this.picker.msUntilRecovery(req.model, excluded));
  }

  /** The session id for affinity: the configured header, else the body's `user` field. */
  private sessionKey(req: CompletionRequest): string | undefined {
    const affinity = this.deps.config.current.routing.affinity;
    if (!affinity) return undefined;
    const header = req.headers[affinity.header];
    if (header) return `h:${header}`;
    const user = req.json.user;
    return affinity.userField && typeof user === 'string' && user !== '' ? `u:${user}` : undefined;
  }

  /** Where a session is placed now. */
  placementOf(sessionKey: string): string | undefined {
    return this.picker.placementOf(sessionKey);
  }

  /**
   * While a stream waits for its first token, SSE comments keep idle proxies (Akash ingress closes a
   * response idle for 60 s) from cutting it. Comments are not content: failover stays invisible.
   */
  private startHeartbeat(res: ClientResponse, state: CommitState): NodeJS.Timeout {
    return setInterval(() => {
      if (state.committed || res.writableEnded || res.destroyed) return;
      if (!res.headersSent) res.writeHead(200, { ...SSE_HEADERS });
      res.write(SSE_HEARTBEAT);
    }, this.deps.config.current.server.heartbeatIntervalMs);
  }
}

/** A model's pool gave up before commit for reasons another model might not share. */
function poolExhausted(err: unknown): boolean {
  return err instanceof GatewayError && (err.status >= 500 || err.code === 'model_not_found');
}

function failureKind(failure: AttemptFailure): FailureKind {
  switch (failure.kind) {
    case 'connect':
      return 'connect';
    case 'timeout':
      return 'timeout';
    case 'bad-response':
      return 'bad-response';
    case 'http':
      return 'server-error';
  }
}

function rethrowReason(signal: AbortSignal): never {
  throw signal.reason as Error;
}
