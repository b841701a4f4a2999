import type { ConfigSource } from '../../config/config-store.js';
import { GatewayError } from '../../errors/gateway-error.js';
import type { Logger } from '../../observability/logger.js';
import type { AttemptOutcome } from '../../observability/metrics.js';
import type { AttemptSpan } from '../../observability/tracing.js';
import type { TimeoutPhase } from '../core/abort-reasons.js';
import type { AttemptFailure, AttemptResult, FailureKind } from '../core/outcomes.js';
import { rewrittenBody } from '../core/request-body.js';
import { tighten } from '../core/timeouts.js';
import type { AttemptTicket } from '../endpoints/health.js';
import { upstreamModelId, type Endpoint, type EndpointRegistry } from '../endpoints/registry.js';
import type { Forwarder } from '../forwarder/forwarder.js';
import {
  DEFAULT_COOLDOWN_MS,
  MAX_WAIT_FOR_RECOVERY_MS,
  backoffMs,
  decide,
} from '../forwarder/retry-policy.js';
import {
  CHAT_PATH,
  runAttempt,
  type AttemptHandle,
  type AttemptInput,
} from '../forwarder/upstream-attempt.js';
import { upstreamRequestError } from '../forwarder/upstream-error.js';
import { ModelRename } from '../streaming/model-rename.js';
import { providerOf, upstreamCall } from '../providers/providers.js';
import type { EndpointPicker } from '../selector/picker.js';
import { repairStream } from './repair-stream.js';
import { exhaustedError } from './exhausted-error.js';
import type { RequestRun } from './request-run.js';
import type { TtfbStats } from './ttfb-stats.js';

interface Launched {
  endpoint: Endpoint;
  /** The attempt's trace span, when tracing is on. */
  span: AttemptSpan | undefined;
  ticket: AttemptTicket;
  input: AttemptInput;
  attempt: AttemptHandle;
}

type Settled = 'done' | 'retry' | { error: GatewayError };

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
      /** Each upstream attempt's end, for the metrics. */
      onAttempt?: ((endpoint: string, provider: string, outcome: AttemptOutcome) => void) | undefined;
    },
  ) {}

  /** Runs the request on its current model's pool (see RequestRun.startPool). */
  async run(run: RequestRun): Promise<void> {
    const { picker, random } = this.deps;
    const { maxAttempts } = this.deps.config.current.routing;
    const { model } = run.req;
    // A route other than chat: endpoints whose provider does not serve it are skipped.
    const route = run.req.path;
    if (route !== undefined && route !== CHAT_PATH) {
      for (const ep of this.deps.registry.endpoints)
        if (!providerOf(ep.config).serves(route, run.req.json)) run.exclude(ep.config.name);
      // Not one of the model's endpoints could: the request is the problem, not their health.
      const serving = this.deps.registry.serving(model);
      if (serving.length > 0 && serving.every((ep) => run.excluded.includes(ep.config.name)))
        throw new GatewayError(
          `No endpoint of '${model}' serves ${route} for this request: their providers (${[
            ...new Set(serving.map((ep) => ep.config.provider)),
          ].join(', ')}) do not${route === '/v1/embeddings' ? ' (Gemini embeds text, not token ids)' : ''}.`,
          { code: 'route_not_served', param: 'model' },
        );
    }

    while (run.attempts < maxAttempts) {
      const first = run.tried.length === 0;
      let endpoint = picker.pick({
        model,
        excluded: run.excluded,
        tried: run.tried,
        sessionKey: first ? run.sessionKey : undefined,
        preferred: first ? run.req.preferEndpoint : undefined,
      });
      if (!endpoint) {
        const waitMs = picker.msUntilRecovery(model, run.excluded);
        if (waitMs === undefined || waitMs > MAX_WAIT_FOR_RECOVERY_MS) break;
        // A millisecond more: timers run on the event loop's clock, which can be a millisecond behind
        // the wall clock that cooldowns are kept in, and the endpoint would still be cooling down.
        await run.lifetime.sleep(waitMs + 1);
        endpoint = picker.pick({ model, excluded: run.excluded, tried: run.tried });
        if (!endpoint) break;
      } else if (run.backoffNext) {
        await run.lifetime.sleep(backoffMs(run.tried.length, random));
      }

      const hedgeDelayMs = run.tried.length === 0 ? this.hedgeDelayMs(model) : undefined;
      const primary = this.launch(endpoint, run);
      const { outcome, rejected } =
        hedgeDelayMs === undefined
          ? await this.outcomeOfOne(primary, run)
          : await this.outcomeOfAll(await this.hedge(primary, hedgeDelayMs, run), run);
      run.onCommit = undefined;
      if (outcome === 'done') return;
      if (rejected !== undefined) throw rejected;
      if (outcome !== 'retry') {
        if (run.transcript?.continuation && (await repairStream(this.deps, run))) return;
        throw outcome.error;
      }
    }
    throw exhaustedError(model, run.failures, picker.msUntilRecovery(model, run.excluded));
  }

  /** The result of a lone attempt, applied to health and the pool. */
  private async outcomeOfOne(l: Launched, run: RequestRun): Promise<{ outcome: Settled; rejected?: Error }> {
    let result: AttemptResult;
    try {
      result = await l.attempt.result;
    } catch (err) {
      // The whole request is over (client gone, deadline): no verdict on the endpoint.
      this.deps.registry.health.release(l.ticket);
      this.ended(l, 'cancelled');
      return { outcome: 'retry', rejected: err as Error };
    }
    try {
      return { outcome: this.settle(l, result, run) };
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
    run: RequestRun,
  ): Promise<{ outcome: Settled; rejected?: Error }> {
    const results = await Promise.allSettled(launched.map((l) => l.attempt.result));
    let outcome: Settled = 'retry';
    let rejected: Error | undefined;
    launched.forEach((l, i) => {
      const result = results[i]!;
      if (result.status === 'rejected') {
        this.deps.registry.health.release(l.ticket);
        this.ended(l, 'cancelled');
        rejected ??= result.reason as Error;
        return;
      }
      try {
        const settled = this.settle(l, result.value, run);
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
  private async hedge(primary: Launched, delayMs: number, run: RequestRun): Promise<Launched[]> {
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
    if (!fired || run.committed || run.attempts >= maxAttempts) return [primary];
    const rivalEndpoint = this.deps.picker.pick({
      model: run.req.model,
      excluded: [...run.excluded, primary.endpoint.config.name],
      tried: run.tried,
    });
    if (!rivalEndpoint) return [primary];
    const rival = this.launch(rivalEndpoint, run);
    run.trace.hedged = true;
    run.onCommit = (winner) => (winner === primary.input ? rival : primary).attempt.cancel();
    run.req.log.debug(
      { primary: primary.endpoint.config.name, rival: rivalEndpoint.config.name, delayMs },
      'no first byte within the hedge delay: racing a second endpoint',
    );
    return [primary, rival];
  }

  private launch(endpoint: Endpoint, run: RequestRun): Launched {
    const { req, trace } = run;
    const name = endpoint.config.name;
    // An endpoint that knows the model by another id (`modelNames`) is asked by that id.
    const upstreamId = upstreamModelId(endpoint.config, req.model);
    // Providers with a protocol or a path of their own translate; openai-compatible ones do not.
    const { path, body, answer } = upstreamCall({
      endpoint: endpoint.config,
      path: req.path ?? CHAT_PATH,
      body: upstreamId === undefined ? req.body : rewrittenBody(req.json, { model: upstreamId }),
      json: () => req.json,
      model: upstreamId ?? req.model,
      stream: req.stream,
      now: Date.now,
    });
    run.attempts++;
    trace.attempts = (trace.attempts ?? 0) + 1;
    trace.endpoint = name;
    run.noteTried(name);
    const ticket = this.deps.registry.health.begin(name, req.log);
    // Traced: a span of its own, continued upstream by a traceparent of its own.
    const span = req.span?.attempt(name, new URL(endpoint.config.url).host, trace.attempts);
    const input: AttemptInput = {
      endpoint: endpoint.config,
      timeouts: tighten(endpoint.config.timeouts, req.timeouts),
      attempt: trace.attempts,
      path,
      body,
      answer,
      headers: span ? { ...req.headers, traceparent: span.traceparent } : req.headers,
      rename: upstreamId === undefined ? undefined : new ModelRename(upstreamId, req.model),
      forwarder: this.deps.forwarder,
      run,
    };
    return { endpoint, span, ticket, input, attempt: runAttempt(input) };
  }

  /** An attempt is over: the metrics count its outcome. */
  private ended(l: Launched, outcome: AttemptOutcome): void {
    this.deps.onAttempt?.(l.endpoint.config.name, l.endpoint.config.provider, outcome);
    l.span?.end(outcome);
  }

  /** Applies one attempt's result to health and the pool state. */
  private settle(l: Launched, result: AttemptResult, run: RequestRun): Settled {
    const { registry } = this.deps;
    const logger = run.req.log;
    const { req, trace } = run;
    const { ticket, endpoint } = l;
    const name = endpoint.config.name;
    this.ended(l, outcomeOf(result));
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
        run.exclude(name);
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
    run.failures.push({ endpoint: name, failure });
    if (decision.exclude) run.exclude(name);
    run.backoffNext = decision.backoff;
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

/** An attempt's result as the metrics label it. */
export function outcomeOf(result: AttemptResult): AttemptOutcome {
  switch (result.type) {
    case 'done':
      return 'success';
    case 'lost':
      return 'cancelled';
    case 'broken':
      return result.kind === 'timeout' ? 'timeout' : 'stream_error';
    case 'failed':
      return failureOutcome(result.failure);
  }
}

function failureOutcome(failure: AttemptFailure): AttemptOutcome {
  switch (failure.kind) {
    case 'connect':
      return 'connect_error';
    case 'timeout':
      return 'timeout';
    case 'http':
      return failure.status === 429 ? 'status_429' : failure.status >= 500 ? 'status_5xx' : 'status_4xx';
    case 'bad-response':
      return 'bad_response';
    case 'error-event':
      return 'error_event';
  }
}

/** Whether the limit that fired is one this request made stricter than the endpoint's own. */
function tightenedByClient(
  req: RequestRun['req'],
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
