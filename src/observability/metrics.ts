import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** How an upstream attempt ended, as `llm_gateway_provider_requests_total` labels it. */
export type AttemptOutcome =
  | 'success'
  | 'connect_error'
  | 'timeout'
  | 'status_429'
  | 'status_4xx'
  | 'status_5xx'
  | 'bad_response'
  | 'error_event'
  | 'stream_error'
  | 'cancelled';

/** One endpoint's live state, read at each scrape. */
export interface EndpointGaugeSource {
  name: string;
  up: boolean;
  inFlight: number;
}

/** Latency buckets (seconds): from a cache hit to a long generation. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** Time to first token: mostly queueing and prefill on the GPU. */
const TTFT_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];
/** The gateway's own time: fractions of a millisecond when all is well. */
const OVERHEAD_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1];

/**
 * The gateway's Prometheus metrics (CONFIG.md, Metrics and health), in a registry of their own. Label
 * values are bounded by the callers (models the gateway knows, endpoint names, status codes). Labelled
 * children are kept per label value, so that a request does not hash its labels again.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'model' | 'status'>;
  private readonly tokens: Counter<'model' | 'type'>;
  private readonly cost: Counter<'model'>;
  private readonly cacheHits: Counter;
  private readonly cacheMisses: Counter;
  private readonly providerRequests: Counter<'provider' | 'endpoint' | 'outcome'>;
  private readonly duration: Histogram;
  private readonly ttft: Histogram;
  private readonly overhead: Histogram;
  private readonly retries: Counter;
  private readonly continuations: Counter;
  private readonly hedges: Counter;
  private readonly rateLimited: Counter<'scope'>;
  private readonly children = new Map<string, { inc(n?: number): void }>();

  constructor(endpoints: () => readonly EndpointGaugeSource[] = () => []) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'llm_gateway_requests_total',
      help: 'Chat completions answered, by model asked and HTTP status.',
      labelNames: ['model', 'status'],
      registers,
    });
    this.tokens = new Counter({
      name: 'llm_gateway_tokens_total',
      help: 'Tokens of finished requests, by model asked and type (prompt, completion).',
      labelNames: ['model', 'type'],
      registers,
    });
    this.cost = new Counter({
      name: 'llm_gateway_cost_total',
      help: 'Cost of finished requests by the pricing table, by model asked.',
      labelNames: ['model'],
      registers,
    });
    this.cacheHits = new Counter({
      name: 'llm_gateway_cache_hits_total',
      help: 'Completions answered from the response cache.',
      registers,
    });
    this.cacheMisses = new Counter({
      name: 'llm_gateway_cache_misses_total',
      help: 'Completions looked up in the response cache and not found.',
      registers,
    });
    this.providerRequests = new Counter({
      name: 'llm_gateway_provider_requests_total',
      help: 'Upstream attempts, by provider, endpoint and outcome (success or the failure kind).',
      labelNames: ['provider', 'endpoint', 'outcome'],
      registers,
    });
    this.duration = new Histogram({
      name: 'llm_gateway_request_duration_seconds',
      help: 'Whole request time, from the request to the last byte of the answer.',
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.ttft = new Histogram({
      name: 'llm_gateway_time_to_first_token_seconds',
      help: 'Streams only: from the request to the first byte of the answer.',
      buckets: TTFT_BUCKETS,
      registers,
    });
    this.overhead = new Histogram({
      name: 'llm_gateway_overhead_seconds',
      help: "The gateway's own time: the request's time minus the time spent waiting on upstreams.",
      buckets: OVERHEAD_BUCKETS,
      registers,
    });
    this.retries = new Counter({
      name: 'llm_gateway_retries_total',
      help: 'Upstream attempts beyond the first of each request (failovers, hedges, continuations).',
      registers,
    });
    this.continuations = new Counter({
      name: 'llm_gateway_continuations_total',
      help: 'Streams broken mid-answer and completed by a continuation.',
      registers,
    });
    this.hedges = new Counter({
      name: 'llm_gateway_hedges_total',
      help: 'Requests that raced a second endpoint after the hedge delay.',
      registers,
    });
    this.rateLimited = new Counter({
      name: 'llm_gateway_rate_limited_total',
      help: 'Requests refused by a limit, by the scope of the limit (key, team, model, global).',
      labelNames: ['scope'],
      registers,
    });
    new Gauge({
      name: 'llm_gateway_endpoint_up',
      help: '1 while an endpoint is known to work (what readiness counts), else 0. Across workers: the minimum.',
      labelNames: ['endpoint'],
      registers,
      aggregator: 'min',
      collect() {
        this.reset();
        for (const ep of endpoints()) this.set({ endpoint: ep.name }, ep.up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'llm_gateway_endpoint_inflight',
      help: 'Upstream requests in flight to an endpoint. Across workers: the sum.',
      labelNames: ['endpoint'],
      registers,
      aggregator: 'sum',
      collect() {
        this.reset();
        for (const ep of endpoints()) this.set({ endpoint: ep.name }, ep.inFlight);
      },
    });
  }

  /** A finished chat completion. `model` must be bounded (a model the gateway knows, else `unknown`). */
  request(input: {
    model: string;
    status: number;
    durationS: number;
    ttftS: number | undefined;
    overheadS: number | undefined;
    promptTokens: number;
    completionTokens: number;
    cost: number;
    attempts: number;
    continued: boolean;
    hedged: boolean;
    cache: 'HIT' | 'MISS' | 'BYPASS' | undefined;
  }): void {
    const { model } = input;
    this.child(this.requests, 'r', model, String(input.status)).inc();
    if (input.promptTokens > 0) this.child(this.tokens, 't', model, 'prompt').inc(input.promptTokens);
    if (input.completionTokens > 0)
      this.child(this.tokens, 't', model, 'completion').inc(input.completionTokens);
    if (input.cost > 0) this.child(this.cost, 'c', model).inc(input.cost);
    this.duration.observe(input.durationS);
    if (input.ttftS !== undefined) this.ttft.observe(input.ttftS);
    if (input.overheadS !== undefined) this.overhead.observe(input.overheadS);
    if (input.attempts > 1) this.retries.inc(input.attempts - 1);
    if (input.continued) this.continuations.inc();
    if (input.hedged) this.hedges.inc();
    if (input.cache === 'HIT') this.cacheHits.inc();
    else if (input.cache === 'MISS') this.cacheMisses.inc();
  }

  /** An upstream attempt's end. */
  attempt(provider: string, endpoint: string, outcome: AttemptOutcome): void {
    this.child(this.providerRequests, 'p', provider, endpoint, outcome).inc();
  }

  /** A request refused by a limit of `scope` (key, team, model, global). */
  limited(scope: string): void {
    this.child(this.rateLimited, 'l', scope).inc();
  }

  /** The Prometheus text of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private child<T extends string>(
    counter: Counter<T>,
    tag: string,
    ...values: string[]
  ): { inc(n?: number): void } {
    const key = `${tag}\u0000${values.join('\u0000')}`;
    let child = this.children.get(key);
    if (!child) {
      child = counter.labels(...values);
      this.children.set(key, child);
    }
    return child;
  }
}
