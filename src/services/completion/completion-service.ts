import { CHAT_PATH } from '../forwarder/upstream-attempt.js';
import type { ConfigSource } from '../../config/config-store.js';
import { GatewayError, GatewayTimeoutError } from '../../errors/gateway-error.js';
import type { Logger } from '../../observability/logger.js';
import type { AttemptOutcome } from '../../observability/metrics.js';
import { continuationEligible } from '../continuation/continuation.js';
import { ClientClosedReason, DeadlineReason, ShuttingDownReason } from '../core/abort-reasons.js';
import type { ClientResponse } from '../core/client-response.js';
import { setEventStreamHeaders, SSE_HEARTBEAT } from '../core/sse.js';
import { Lifetime } from '../core/lifetime.js';
import type { CompletionRequest, RequestTrace } from '../core/request.js';
import { rewrittenBody } from '../core/request-body.js';
import { missingModelError } from '../endpoints/missing-model.js';
import type { EndpointRegistry } from '../endpoints/registry.js';
import type { Forwarder } from '../forwarder/forwarder.js';
import { EndpointPicker } from '../selector/picker.js';
import { StreamTranscript, TranscriptBudget } from '../streaming/transcript.js';
import { PoolRunner } from './pool-runner.js';
import { RequestRun } from './request-run.js';
import { TtfbStats } from './ttfb-stats.js';

export interface CompletionServiceDeps {
  config: ConfigSource;
  registry: EndpointRegistry;
  forwarder: Forwarder;
  logger: Logger;
  /** While a round of discovery runs (the first, or one after a reload), its end; each poll is bounded. */
  pendingDiscovery: () => Promise<void> | undefined;
  random: () => number;
  now: () => number;
  /** Each upstream attempt's end (failovers, hedges, continuations), for the metrics. */
  onAttempt?: (endpoint: string, provider: string, outcome: AttemptOutcome) => void;
}

/**
 * Routes one chat completion: picks endpoints by priority and weight, retries and fails over before the
 * first byte reaches the client, falls back along an alias chain when a model's whole pool is exhausted,
 * relays the answer, and keeps endpoint health up to date.
 */
export class CompletionService {
  /** Requests inside complete() right now, upstream work included. */
  active = 0;
  /** Their runs, so that a shutdown can end them. */
  private readonly runs = new Set<RequestRun>();
  private readonly picker: EndpointPicker;
  private readonly pools: PoolRunner;
  /** What all streams' transcripts may keep together (CONTINUATION_BUDGET_BYTES). */
  private readonly transcripts = new TranscriptBudget(0);

  constructor(private readonly deps: CompletionServiceDeps) {
    this.picker = new EndpointPicker(deps);
    this.pools = new PoolRunner({ ...deps, picker: this.picker, ttfb: new TtfbStats() });
  }

  async complete(req: CompletionRequest, res: ClientResponse, trace: RequestTrace): Promise<void> {
    const { registry, now } = this.deps;
    const config = this.deps.config.current;
    const chain = config.aliases[req.model] ?? [req.model];
    if (!served(registry, chain) && registry.hasUnknownModels()) await this.deps.pendingDiscovery();
    if (!served(registry, chain))
      throw missingModelError(registry, req.model, {
        aliases: config.aliases,
        retryAfterSeconds: Math.ceil(config.health.probeIntervalMs / 1000),
      });

    const { totalMs: streamTotalMs, jsonTotalMs } = config.routing.timeouts;
    const configuredMs = req.stream ? streamTotalMs : (jsonTotalMs ?? streamTotalMs);
    const totalMs = Math.min(req.timeouts.totalMs ?? Infinity, configuredMs);
    // One signal for the whole request: the client going away (its response closed before the answer
    // was finished) or the request's deadline.
    if (res.destroyed) throw new ClientClosedReason();
    // The deadline is enforced by whoever works for the request meanwhile (attempts, waits): no timer
    // of its own.
    const lifetime = new Lifetime(totalMs);
    const onClose = () => {
      if (!res.writableFinished) lifetime.end(new ClientClosedReason());
    };
    res.on('close', onClose);
    const run = new RequestRun(
      req,
      res,
      trace,
      lifetime,
      now,
      req.stream ? this.transcript(req) : undefined,
      this.sessionKey(req),
    );
    const heartbeat = req.stream ? this.startHeartbeat(run) : undefined;
    this.active++;
    this.runs.add(run);
    try {
      let lastError: unknown;
      for (let i = 0; i < chain.length; i++) {
        const model = chain[i]!;
        if (registry.serving(model).length === 0) continue;
        const fallback = i > 0;
        const body = model === req.model ? req.body : rewrittenBody(req.json, { model });
        try {
          trace.servedModel = model;
          run.startPool(
            model === req.model ? req : { ...req, model, body },
            fallback ? { 'x-gateway-fallback-model': model } : undefined,
          );
          await this.pools.run(run);
          return;
        } catch (err) {
          if (run.committed || !poolExhausted(err)) throw err;
          lastError = err;
          if (i < chain.length - 1)
            req.log.info(
              { model, alias: req.model },
              'model pool exhausted; trying the next model of the alias',
            );
        }
      }
      throw lastError;
    } catch (err) {
      if (err instanceof DeadlineReason) {
        throw new GatewayTimeoutError(
          `The request did not complete within ${totalMs < 10_000 ? `${totalMs} ms` : `${Math.round(totalMs / 1000)} s`}.`,
          'request_timeout',
        );
      }
      throw err;
    } finally {
      this.active--;
      this.runs.delete(run);
      trace.ttfbMs = run.ttfbMs;
      if (heartbeat) clearInterval(heartbeat);
      run.transcript?.dispose();
      res.removeListener('close', onClose);
    }
  }

  /**
   * What a stream's client has been told, for repairing a break: its text too when continuation is on
   * and the request is a plain text chat (no tools, one choice).
   */
  private transcript(req: CompletionRequest): StreamTranscript {
    const { continuation, continuationMaxBytes, continuationBudgetBytes } = this.deps.config.current.routing;
    this.transcripts.limitBytes = continuationBudgetBytes;
    return new StreamTranscript({
      // A continuation is a chat request: other routes' streams are only ended cleanly or marked broken.
      keepText: continuation && (req.path ?? CHAT_PATH) === CHAT_PATH && continuationEligible(req.json),
      maxBytes: continuationMaxBytes,
      budget: this.transcripts,
    });
  }

  /**
   * Ends every request in flight (the gateway's grace period ran out): their attempts stop without a
   * verdict on their endpoints, and each client gets a `server_shutting_down` error.
   */
  endAll(): void {
    for (const run of this.runs) run.lifetime.end(new ShuttingDownReason());
  }

  /** Bytes kept by the transcripts of open streams. */
  get transcriptBytes(): number {
    return this.transcripts.used;
  }

  /** The session id for affinity: the configured header, else the body's `user` field. */
  private sessionKey(req: CompletionRequest): string | undefined {
    const affinity = this.deps.config.current.routing.affinity;
    if (!affinity) return undefined;
    const raw = req.clientHeaders[affinity.header];
    const header = Array.isArray(raw) ? raw[0] : raw;
    if (header) return `h:${header}`;
    const user = req.json.user;
    return affinity.userField && typeof user === 'string' && user !== '' ? `u:${user}` : undefined;
  }

  /**
   * While a stream waits for its first token, SSE comments keep idle proxies (Akash ingress closes a
   * response idle for 60 s) from cutting it. Comments are not content: failover stays invisible.
   */
  private startHeartbeat(run: RequestRun): NodeJS.Timeout {
    const { res } = run;
    return setInterval(() => {
      if (run.committed || res.writableEnded || res.destroyed) return;
      if (!res.headersSent) setEventStreamHeaders(res);
      res.write(SSE_HEARTBEAT);
    }, this.deps.config.current.server.heartbeatIntervalMs);
  }
}

/** Some model of the chain has an endpoint now. */
function served(registry: EndpointRegistry, chain: readonly string[]): boolean {
  for (const model of chain) if (registry.serving(model).length > 0) return true;
  return false;
}

/** A model's pool gave up before commit for reasons another model might not share. */
function poolExhausted(err: unknown): boolean {
  // A model none of whose endpoints serves the route: the alias's next model may.
  return (
    err instanceof GatewayError &&
    (err.status >= 500 || err.code === 'model_not_found' || err.code === 'route_not_served')
  );
}
