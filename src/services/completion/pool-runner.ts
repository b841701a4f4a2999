import type { ConfigSource } from '../../config/config-store.js';
import type { Logger } from '../../observability/logger.js';
import type { AttemptInput, AttemptResult, CommitState } from '../core/attempt.js';
import type { ClientResponse } from '../core/client-response.js';
import type { CompletionRequest, CompletionTrace } from './completion-service.js';
import type { Endpoint, EndpointRegistry } from '../endpoints/registry.js';
import type { EndpointPicker } from '../selector/picker.js';
import { exhaustedError, type FailedAttempt } from './exhausted-error.js';
import type { Forwarder } from '../forwarder/forwarder.js';
import type { AttemptTicket, FailureKind } from '../endpoints/health.js';
import type { TimeoutPhase } from '../core/abort-reasons.js';
import {
  DEFAULT_COOLDOWN_MS,
  MAX_WAIT_FOR_RECOVERY_MS,
  backoffMs,
  decide,
  type AttemptFailure,
} from '../forwarder/retry-policy.js';
import type { TtfbStats } from './ttfb-stats.js';
import { runAttempt, type AttemptHandle } from '../forwarder/upstream-attempt.js';
import { continueStream } from '../continuation/continue-stream.js';
import { tighten } from '../core/timeouts.js';
import type { StreamTranscript } from '../streaming/transcript.js';
import type { Lifetime } from '../core/lifetime.js';
import type { GatewayError } from '../../errors/gateway-error.js';
import { upstreamRequestError } from '../forwarder/upstream-error.js';

export interface PoolContext {
  /** Ends when the client leaves or the request's deadline passes. */
  lifetime: Lifetime;
  /** Present when a broken stream of this request may be continued on another endpoint. */
  transcript?: StreamTranscript | undefined;
  state: CommitState;
  requestStartedAt: number;
  sessionKey?: string | undefined;
  responseHeaders?: Record<string, string> | undefined;
}

interface Launched {
  endpoint: Endpoint;
  ticket: AttemptTicket;
  input: AttemptInput;
  attempt: AttemptHandle;
}

type Settled = 'done' | 'retry' | { error: GatewayError };

export interface PoolState {
  /** Attempts on this model's pool (the request's count goes on across an alias chain). */
  attempts: number;
  /** Endpoint names barred for the rest of this request (few: plain arrays, cheaper than sets). */
  excluded: string[];
  /** Endpoint names tried so far, each once. */
  tried: string[];
  failures: FailedAttempt[];
  backoffNext: boolean;
}

/**
 * The attempts on the endpoints of one model: pick, try, classify, retry or fail over before commit,
 * with at most MAX_ATTEMPTS tries. With hedging on for the model, a first attempt with no first byte
 * after the hedge delay gets a rival on another endpoint; the first to commit wins, the other is aborted.
 */
export class PoolRunner {
  constructor(
    private readonly deps: {
      config: ConfigSource;
      registry: EndpointRegistry;
      forwarder: Forwarder;
      logger: Logger;
      picker: EndpointPicker;
      ttfb: TtfbStats;
      random: () => number;
      now: () => number;
    },
  ) {}

  async run(
    req: CompletionRequest,
    res: ClientResponse,
    trace: CompletionTrace,
    ctx: PoolContext,
  ): Promise<void> {
    const { picker, random } = this.deps;
    const { maxAttempts } = this.deps.config.current.routing;
    const pool: PoolState = {
      attempts: 0,
      excluded: [],
      tried: [],
      failures: [],
      backoffNext: false,
    };

    while (pool.attempts < maxAttempts) {
      const first = pool.tried.length === 0;
      let endpoint = picker.pick({
        model: req.model,
        excluded: pool.excluded,
        tried: pool.tried,
        sessionKey: first ? ctx.sessionKey : undefined,
      });
      if (!endpoint) {
        const waitMs = picker.msUntilRecovery(req.model, pool.excluded);
        if (waitMs === undefined || waitMs > MAX_WAIT_FOR_RECOVERY_MS) break;
        await ctx.lifetime.sleep(waitMs);
        endpoint = picker.pick({ model: req.model, excluded: pool.excluded, tried: pool.tried });
        if (!endpoint) break;
      } else if (pool.backoffNext) {
        await ctx.lifetime.sleep(backoffMs(pool.tried.length, random));
      }

      const hedgeDelayMs = pool.tried.length === 0 ? this.hedgeDelayMs(req.model) : undefined;
      const primary = this.launch(endpoint, req, res, trace, ctx, pool);
      const { outcome, rejected } =
        hedgeDelayMs === undefined
          ? await this.outcomeOfOne(primary, req, trace, pool)
          : await this.outcomeOfAll(
              await this.hedge(primary, hedgeDelayMs, req, res, trace, ctx, pool),
              req,
              trace,
              pool,
            );
      ctx.state.onCommit = undefined;
      if (outcome === 'done') return;
      if (rejected !== undefined) throw rejected;
      if (outcome !== 'retry') {
        if (ctx.transcript?.continuation && (await continueStream(this.deps, req, res, trace, ctx, pool)))
          return;
        throw outcome.error;
      }
    }
    throw exhaustedError(req.model, pool.failures, picker.msUntilRecovery(req.model, pool.excluded));
  }

  /** The result of a lone attempt, applied to health and the pool. */
  private async outcomeOfOne(
    l: Launched,
    req: CompletionRequest,
    trace: CompletionTrace,
    pool: PoolState,
  ): Promise<{ outcome: Settled; rejected?: Error }> {
    let result: AttemptResult;
    try {
      result = await l.attempt.result;
    } catch (err) {
      // The whole request is over (client gone, deadline): no verdict on the endpoint.
      this.deps.registry.health.release(l.ticket);
      return { outcome: 'retry', rejected: err as Error };
    }
    try {
      return { outcome: this.settle(l, result, req, trace, pool) };
    } catch (err) {
      return { outcome: 'retry', rejected: err as Error };
    }
  }

  /**
   * The results of hedged attempts. Every attempt is settled (its health ticket released) before
   * anything is thrown, also when the request ends (client gone) while a rival has already lost.
   */
  private async outcomeOfAll(
    launched: readonly Launched[],
    req: CompletionRequest,
    trace: CompletionTrace,
    pool: PoolState,
  ): Promise<{ outcome: Settled; rejected?: Error }> {
    const results = await Promise.allSettled(launched.map((l) => l.attempt.result));
    let outcome: Settled = 'retry';
    let rejected: Error | undefined;
    launched.forEach((l, i) => {
      const result = results[i]!;
      if (result.status === 'rejected') {
        this.deps.registry.health.release(l.ticket);
        rejected ??= result.reason as Error;
        return;
      }
      try {
        const settled = this.settle(l, result.value, req, trace, pool);
        if (settled !== 'retry') outcome = settled;
      } catch (err) {
        rejected ??= err as Error;
      }
    });
    return { outcome, rejected };
  }

  /** The hedge delay for this model, or undefined when hedging is off for it (or p95 is not known yet). */
  private hedgeDelayMs(model: string): number | undefined {
    const { delayMs, models } = this.deps.config.current.routing.hedge;
    // Setting a delay opts in; `models` narrows it to some models.
    if (delayMs === 0 || (models.length > 0 && !models.includes(model) && !models.includes('*')))
      return undefined;
    return delayMs === 'p95' ? this.deps.ttfb.p95(model) : delayMs;
  }

  /** Waits up to the hedge delay for the primary's first byte, then starts a rival on another endpoint. */
  private async hedge(
    primary: Launched,
    delayMs: number,
    req: CompletionRequest,
    res: ClientResponse,
    trace: CompletionTrace,
    ctx: PoolContext,
    pool: PoolState,
  ): Promise<Launched[]> {
    let timer: NodeJS.Timeout | undefined;
    const fired = await Promise.race([
      primary.attempt.result.then(
        () => false,
        () => false,
      ),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), delayMs))),
    ]);
    clearTimeout(timer);
    const { maxAttempts } = this.deps.config.current.routing;
    if (!fired || ctx.state.committed || pool.attempts >= maxAttempts) return [primary];
    const rivalEndpoint = this.deps.picker.pick({
      model: req.model,
      excluded: [...pool.excluded, primary.endpoint.config.name],
      tried: pool.tried,
    });
    if (!rivalEndpoint) return [primary];
    const rival = this.launch(rivalEndpoint, req, res, trace, ctx, pool);
    ctx.state.onCommit = (winner) => (winner === primary.input ? rival : primary).attempt.cancel();
    this.deps.logger.debug(
      { primary: primary.endpoint.config.name, rival: rivalEndpoint.config.name, delayMs },
      'no first byte within the hedge delay: racing a second endpoint',
    );
    return [primary, rival];
  }

  private launch(
    endpoint: Endpoint,
    req: CompletionRequest,
    res: ClientResponse,
    trace: CompletionTrace,
    ctx: PoolContext,
    pool: PoolState,
  ): Launched {
    const name = endpoint.config.name;
    pool.attempts++;
    trace.attempts = (trace.attempts ?? 0) + 1;
    trace.endpoint = name;
    addOnce(pool.tried, name);
    const ticket = this.deps.registry.health.begin(name);
    const input: AttemptInput = {
      endpoint,
      timeouts: tighten(endpoint.config.timeouts, req.timeouts),
      attempt: trace.attempts,
      body: req.body,
      headers: req.headers,
      res,
      forwarder: this.deps.forwarder,
      lifetime: ctx.lifetime,
      now: this.deps.now,
      requestStartedAt: ctx.requestStartedAt,
      state: ctx.state,
      trace,
      responseHeaders: ctx.responseHeaders,
      transcript: ctx.transcript,
    };
    return { endpoint, ticket, input, attempt: runAttempt(input) };
  }

  /** Applies one attempt's result to health and the pool state. */
  private settle(
    l: Launched,
    result: AttemptResult,
    req: CompletionRequest,
    trace: CompletionTrace,
    pool: PoolState,
  ): Settled {
    const { registry, logger } = this.deps;
    const { ticket, endpoint } = l;
    const name = endpoint.config.name;
    switch (result.type) {
      case 'done':
        trace.endpoint = name;
        trace.upstreamStatus = result.status;
        registry.health.success(ticket, { latencyMs: result.latencyMs, ttfbMs: result.ttfbMs });
        this.deps.ttfb.record(req.model, result.ttfbMs);
        return 'done';
      case 'lost':
        registry.health.release(ticket);
        return 'retry';
      case 'broken':
        trace.endpoint = name;
        if (tightenedByClient(req, endpoint, result.timeout)) registry.health.release(ticket);
        else registry.health.failure(ticket, result.kind, result.error.message);
        addOnce(pool.excluded, name);
        logger.warn({ endpoint: name, code: result.error.code }, 'upstream failed after the answer started');
        return { error: result.error };
      case 'failed':
        break;
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
    pool.failures.push({ endpoint: name, failure });
    if (decision.exclude) addOnce(pool.excluded, name);
    pool.backoffNext = decision.backoff;
    // A limit the client itself tightened says nothing about the endpoint.
    const health =
      failure.kind === 'timeout' && tightenedByClient(req, endpoint, failure.limit)
        ? 'none'
        : decision.health;
    switch (health) {
      case 'none':
        registry.health.release(ticket);
        break;
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
    logger.debug(
      { endpoint: name, attempt: l.input.attempt, failure: failure.message },
      'attempt failed, trying next',
    );
    return 'retry';
  }
}

/** Whether the limit that fired is one this request made stricter than the endpoint's own. */
function tightenedByClient(
  req: CompletionRequest,
  endpoint: Endpoint,
  limit: TimeoutPhase | undefined,
): boolean {
  if (limit === undefined) return false;
  const own = endpoint.config.timeouts;
  const asked = req.timeouts;
  switch (limit) {
    case 'first-byte':
      return asked.firstByteMs !== undefined && asked.firstByteMs < own.firstByteMs;
    case 'idle':
      return asked.idleMs !== undefined && asked.idleMs < own.idleMs;
    case 'throughput':
      return asked.minBytesPerSecond !== undefined && asked.minBytesPerSecond > own.minBytesPerSecond;
    case 'attempt-total':
      return false;
  }
}

export function addOnce(names: string[], name: string): void {
  if (!names.includes(name)) names.push(name);
}

function failureKind(failure: AttemptFailure): FailureKind {
  switch (failure.kind) {
    case 'connect':
      return 'connect';
    case 'timeout':
      return 'timeout';
    case 'bad-response':
      return 'bad-response';
    case 'error-event':
      return 'stream-error';
    case 'http':
      return 'server-error';
  }
}
