import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

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

/**
 * Latency buckets (seconds): from a cache hit to a long generation; from 50 ms to 5 s neighbouring
 * bounds are 1.2–1.5× apart, so that a quantile interpolated inside one (histogram_quantile, the
 * dashboard) stays close to the truth.
 */
const DURATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 7.5,
  10, 15, 20, 30, 60, 120, 300,
];
/** Time to first token: mostly queueing and prefill on the GPU. */
const TTFT_BUCKETS = [
  0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 20, 30, 60,
];
/** The gateway's own time: fractions of a millisecond when all is well. */
const OVERHEAD_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1];

/** A metric's samples as prom-client's registry and cluster aggregator read them. */
interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
  aggregator: 'sum';
}

/**
 * A counter the request path adds to with a plain number per label set (prom-client's own hashes its
 * labels on every increment); prom-client reads it at scrape time through get().
 */
class LightCounter {
  private readonly cells = new Map<string, { labels: Record<string, string>; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[] = [],
  ) {}

  /** The cell of one set of label values (in labelNames order): kept, so adding is `cell.value += n`. */
  cell(...values: string[]): { value: number } {
    const key = values.length === 1 ? values[0]! : values.join('\u0000');
    let cell = this.cells.get(key);
    if (!cell) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((label, i) => (labels[label] = values[i]!));
      cell = { labels, value: 0 };
      this.cells.set(key, cell);
    }
    return cell;
  }

  get(): MetricData {
    return {
      name: this.name,
      help: this.help,
      type: 'counter',
      values: [...this.cells.values()].map((c) => ({ value: c.value, labels: c.labels })),
      aggregator: 'sum',
    };
  }
}

/** One label value's buckets (not cumulative), sum and count. */
class HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/**
 * A histogram with at most one label: a cell of buckets per label value (or one cell without labels),
 * cumulated at scrape time.
 */
class LightHistogram {
  private readonly cells = new Map<string, HistogramCell>();
  private readonly unlabelled: HistogramCell | undefined;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly bounds: readonly number[],
    private readonly label?: string,
  ) {
    if (label === undefined) {
      this.unlabelled = new HistogramCell(bounds);
      this.cells.set('', this.unlabelled);
    }
  }

  observe(value: number): void {
    this.unlabelled!.observe(value);
  }

  /** The cell of one label value (the histogram must have a label). */
  cell(labelValue: string): HistogramCell {
    let cell = this.cells.get(labelValue);
    if (!cell) {
      cell = new HistogramCell(this.bounds);
      this.cells.set(labelValue, cell);
    }
    return cell;
  }

  /** Each label value's bucket counts (not cumulative), copied. */
  counts(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const [value, cell] of this.cells) out.set(value, Array.from(cell.counts));
    return out;
  }

  get(): MetricData {
    const values: MetricData['values'] = [];
    for (const [value, cell] of this.cells) {
      const own: Record<string, string> = this.label === undefined ? {} : { [this.label]: value };
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += cell.counts[i]!;
        values.push({ value: cumulative, labels: { ...own, le }, metricName: `${this.name}_bucket` });
      });
      values.push({ value: cell.count, labels: { ...own, le: '+Inf' }, metricName: `${this.name}_bucket` });
      values.push({ value: cell.sum, labels: own, metricName: `${this.name}_sum` });
      values.push({ value: cell.count, labels: own, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }
}

/**
 * Cumulative totals of this process since it started, for the dashboard's traffic history
 * (traffic-history.ts takes differences between two of them). Bucket counts are not cumulative.
 */
export interface MetricsSnapshot {
  requests: number;
  /** Answers with a 5xx status, and 4xx ones other than 429. */
  serverErrors: number;
  clientErrors: number;
  /** 429 answers: refused by a limit or passed on from upstreams that all were. */
  limited: number;
  retries: number;
  continuations: number;
  hedges: number;
  cacheHits: number;
  cacheMisses: number;
  promptTokens: number;
  completionTokens: number;
  cost: number;
  duration: number[];
  ttft: number[];
  /** Per endpoint that served anything: time to first token buckets, attempts and failed attempts. */
  endpoints: Record<string, { ttft: number[]; attempts: number; failures: number }>;
}

export const TRAFFIC_BUCKETS = { duration: DURATION_BUCKETS, ttft: TTFT_BUCKETS } as const;

/**
 * The gateway's Prometheus metrics (CONFIG.md, Metrics and health), in a registry of their own. Label
 * values are bounded by the callers (models the gateway knows, endpoint names, status codes). Labelled
 * children are kept per label value, so that a request does not hash its labels again.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requests = new LightCounter(
    'llm_gateway_requests_total',
    'Chat completions answered, by model asked and HTTP status.',
    ['model', 'status'],
  );
  private readonly tokens = new LightCounter(
    'llm_gateway_tokens_total',
    'Tokens of finished requests, by model asked and type (prompt, completion).',
    ['model', 'type'],
  );
  private readonly cost = new LightCounter(
    'llm_gateway_cost_total',
    'Cost of finished requests by the pricing table, by model asked.',
    ['model'],
  );
  private readonly cacheHitsCounter = new LightCounter(
    'llm_gateway_cache_hits_total',
    'Completions answered from the response cache.',
  );
  private readonly hits = this.cacheHitsCounter.cell();
  private readonly cacheMisses = new LightCounter(
    'llm_gateway_cache_misses_total',
    'Completions looked up in the response cache and not found.',
  );
  private readonly providerRequests = new LightCounter(
    'llm_gateway_provider_requests_total',
    'Upstream attempts, by provider, endpoint and outcome (success or the failure kind).',
    ['provider', 'endpoint', 'outcome'],
  );
  private readonly duration = new LightHistogram(
    'llm_gateway_request_duration_seconds',
    'Whole request time, from the request to the last byte of the answer.',
    DURATION_BUCKETS,
  );
  private readonly ttft = new LightHistogram(
    'llm_gateway_time_to_first_token_seconds',
    'Streams only: from the request to the first byte of the answer, by the endpoint that answered (`cache` for a cache hit).',
    TTFT_BUCKETS,
    'endpoint',
  );
  private readonly overhead = new LightHistogram(
    'llm_gateway_overhead_seconds',
    "The gateway's own time: the request's time minus the time spent waiting on upstreams.",
    OVERHEAD_BUCKETS,
  );
  private readonly retries = new LightCounter(
    'llm_gateway_retries_total',
    'Upstream attempts beyond the first of each request (failovers, hedges, continuations).',
  );
  private readonly continuations = new LightCounter(
    'llm_gateway_continuations_total',
    'Streams broken mid-answer and completed by a continuation.',
  );
  private readonly hedges = new LightCounter(
    'llm_gateway_hedges_total',
    'Requests that raced a second endpoint after the hedge delay.',
  );
  private readonly rateLimited = new LightCounter(
    'llm_gateway_rate_limited_total',
    'Requests refused by a limit, by the scope of the limit (key, team, model, global).',
    ['scope'],
  );
  /** Cells of the counters without labels, and the last model's cells: added to without a lookup. */
  private readonly misses = this.cacheMisses.cell();
  private readonly retried = this.retries.cell();
  private readonly continued = this.continuations.cell();
  private readonly hedged = this.hedges.cell();
  private last: { model: string; status: number; count: { value: number } } | undefined;
  private lastTtft: { endpoint: string; cell: HistogramCell } | undefined;

  constructor(endpoints: () => readonly EndpointGaugeSource[] = () => []) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    for (const metric of [
      this.requests,
      this.tokens,
      this.cost,
      this.cacheHitsCounter,
      this.cacheMisses,
      this.providerRequests,
      this.duration,
      this.ttft,
      this.overhead,
      this.retries,
      this.continuations,
      this.hedges,
      this.rateLimited,
    ])
      // A metric is anything with a name and get(): prom-client formats and aggregates what it returns.
      this.registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
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
    /** The endpoint that answered (`cache` for a hit, `none` when none did). */
    endpoint: string;
    overheadS: number | undefined;
    promptTokens: number;
    completionTokens: number;
    cost: number;
    attempts: number;
    continued: boolean;
    hedged: boolean;
    cache: 'HIT' | 'MISS' | 'BYPASS' | undefined;
  }): void {
    const { model, status } = input;
    let last = this.last;
    if (last?.model !== model || last.status !== status) {
      last = { model, status, count: this.requests.cell(model, String(status)) };
      this.last = last;
    }
    last.count.value++;
    if (input.promptTokens > 0) this.tokens.cell(model, 'prompt').value += input.promptTokens;
    if (input.completionTokens > 0) this.tokens.cell(model, 'completion').value += input.completionTokens;
    if (input.cost > 0) this.cost.cell(model).value += input.cost;
    this.duration.observe(input.durationS);
    if (input.ttftS !== undefined) {
      let ttft = this.lastTtft;
      if (ttft?.endpoint !== input.endpoint) {
        ttft = { endpoint: input.endpoint, cell: this.ttft.cell(input.endpoint) };
        this.lastTtft = ttft;
      }
      ttft.cell.observe(input.ttftS);
    }
    if (input.overheadS !== undefined) this.overhead.observe(input.overheadS);
    if (input.attempts > 1) this.retried.value += input.attempts - 1;
    if (input.continued) this.continued.value++;
    if (input.hedged) this.hedged.value++;
    if (input.cache === 'HIT') this.hits.value++;
    else if (input.cache === 'MISS') this.misses.value++;
  }

  /** An upstream attempt's end. */
  attempt(provider: string, endpoint: string, outcome: AttemptOutcome): void {
    this.providerRequests.cell(provider, endpoint, outcome).value++;
  }

  /** A request refused by a limit of `scope` (key, team, model, global). */
  limited(scope: string): void {
    this.rateLimited.cell(scope).value++;
  }

  /** This process's totals so far (read off the metrics, nothing counted twice on the request path). */
  snapshot(): MetricsSnapshot {
    const snap: MetricsSnapshot = {
      requests: 0,
      serverErrors: 0,
      clientErrors: 0,
      limited: 0,
      retries: this.retried.value,
      continuations: this.continued.value,
      hedges: this.hedged.value,
      cacheHits: this.hits.value,
      cacheMisses: this.misses.value,
      promptTokens: 0,
      completionTokens: 0,
      cost: 0,
      duration: [],
      ttft: new Array<number>(TTFT_BUCKETS.length + 1).fill(0),
      endpoints: {},
    };
    for (const { labels, value } of this.requests.get().values) {
      const status = Number(labels.status);
      snap.requests += value;
      if (status >= 500) snap.serverErrors += value;
      else if (status === 429) snap.limited += value;
      else if (status >= 400) snap.clientErrors += value;
    }
    for (const { labels, value } of this.tokens.get().values) {
      if (labels.type === 'prompt') snap.promptTokens += value;
      else snap.completionTokens += value;
    }
    for (const { value } of this.cost.get().values) snap.cost += value;
    snap.duration = this.duration.counts().get('') ?? [];
    const endpointOf = (name: string) =>
      (snap.endpoints[name] ??= {
        ttft: new Array<number>(TTFT_BUCKETS.length + 1).fill(0),
        attempts: 0,
        failures: 0,
      });
    for (const [endpoint, counts] of this.ttft.counts()) {
      counts.forEach((n, i) => (snap.ttft[i]! += n));
      if (endpoint !== 'cache' && endpoint !== 'none') endpointOf(endpoint).ttft = counts;
    }
    for (const { labels, value } of this.providerRequests.get().values) {
      const ep = endpointOf(String(labels.endpoint));
      ep.attempts += value;
      // A cancelled attempt lost a race or its client left: not the endpoint's failure.
      if (labels.outcome !== 'success' && labels.outcome !== 'cancelled') ep.failures += value;
    }
    return snap;
  }

  /** The Prometheus text of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
