import { TRAFFIC_BUCKETS, type MetricsSnapshot } from './metrics.js';

/**
 * One interval of traffic: what changed between two snapshots of the metrics (the same fields, as
 * differences), with the interval's start and length (ms), aligned to the wall clock so that workers'
 * intervals line up. Plain JSON.
 */
export type TrafficInterval = MetricsSnapshot & { t: number; ms: number };

/** A point of the dashboard's charts. Latencies in ms, null when nothing was observed. */
export interface TrafficPoint {
  t: string;
  seconds: number;
  requests: number;
  rps: number;
  errors: number;
  clientErrors: number;
  limited: number;
  retries: number;
  continuations: number;
  hedges: number;
  cacheHits: number;
  cacheMisses: number;
  tokens: number;
  cost: number;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  ttftP50Ms: number | null;
  ttftP95Ms: number | null;
}

export interface TrafficView {
  object: 'traffic';
  intervalSeconds: number;
  /** How far back the history goes (intervals kept × their length). */
  windowSeconds: number;
  /** Oldest first; the last one is the interval still running (shorter: see `seconds`). */
  points: TrafficPoint[];
  /** The last minute, the running interval included. */
  recent: TrafficPoint & { tokensPerMinute: number };
  /** Per endpoint, over the last `endpointWindowSeconds`. */
  endpointWindowSeconds: number;
  endpoints: Record<
    string,
    {
      attempts: number;
      failures: number;
      errorRatio: number | null;
      ttftP50Ms: number | null;
      ttftP95Ms: number | null;
    }
  >;
  /** How many processes' numbers are summed here (WORKERS). */
  processes: number;
}

const COUNTERS = [
  'requests',
  'serverErrors',
  'clientErrors',
  'limited',
  'retries',
  'continuations',
  'hedges',
  'cacheHits',
  'cacheMisses',
  'promptTokens',
  'completionTokens',
  'cost',
] as const;

/**
 * The last minutes of traffic, for the dashboard: every `intervalMs` (aligned to the wall clock) the
 * metrics' totals are read and the difference from the previous reading kept, in a ring of `keep`
 * intervals. Nothing runs on the request path; one timer, unref'd, runs beside it.
 */
export class TrafficHistory {
  private readonly ring: TrafficInterval[] = [];
  /** The last reading: when it was taken, and the interval boundary it stands for. */
  private last: Reading;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly read: () => MetricsSnapshot,
    private readonly options: { intervalMs: number; keep: number; now: () => number } = {
      intervalMs: 5_000,
      keep: 180,
      now: Date.now,
    },
  ) {
    const at = options.now();
    this.last = { at, t: Math.floor(at / options.intervalMs) * options.intervalMs, snap: read() };
  }

  get intervalMs(): number {
    return this.options.intervalMs;
  }

  /** Starts sampling at each interval boundary. */
  start(): void {
    if (this.timer) return;
    const next = () => {
      const { intervalMs, now } = this.options;
      const wait = intervalMs - (now() % intervalMs);
      this.timer = setTimeout(() => {
        this.sample();
        next();
      }, wait);
      this.timer.unref();
    };
    next();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Closes the interval running now (called by the timer at its boundary). */
  sample(): void {
    const { now, intervalMs, keep } = this.options;
    const at = now();
    // A timer may fire a little early or late: the reading stands for the nearest boundary.
    const reading = { at, t: Math.round(at / intervalMs) * intervalMs, snap: this.read() };
    this.ring.push(difference(this.last, reading));
    if (this.ring.length > keep) this.ring.shift();
    this.last = reading;
  }

  /** The closed intervals, oldest first, and the one running now. */
  intervals(): TrafficInterval[] {
    const at = this.options.now();
    const current = difference(this.last, { at, t: at, snap: this.read() });
    return [...this.ring, current];
  }
}

interface Reading {
  at: number;
  t: number;
  snap: MetricsSnapshot;
}

function difference(from: Reading, to: Reading): TrafficInterval {
  const a = from.snap;
  const b = to.snap;
  const out = {
    t: from.t,
    ms: Math.max(0, to.at - from.at),
    duration: minus(b.duration, a.duration),
    ttft: minus(b.ttft, a.ttft),
    endpoints: {},
  } as TrafficInterval;
  for (const k of COUNTERS) out[k] = b[k] - a[k];
  for (const [name, ep] of Object.entries(b.endpoints)) {
    const before = a.endpoints[name];
    const attempts = ep.attempts - (before?.attempts ?? 0);
    const ttft = minus(ep.ttft, before?.ttft ?? []);
    if (attempts > 0 || ttft.some((n) => n > 0))
      out.endpoints[name] = { ttft, attempts, failures: ep.failures - (before?.failures ?? 0) };
  }
  return out;
}

function emptyInterval(t: number): TrafficInterval {
  const out = { t, ms: 0, duration: [], ttft: [], endpoints: {} } as unknown as TrafficInterval;
  for (const k of COUNTERS) out[k] = 0;
  return out;
}

/** Adds `iv` into `sum`, whose length becomes `ms`. */
function sumInto(sum: TrafficInterval, iv: TrafficInterval, ms: number): void {
  sum.ms = ms;
  for (const k of COUNTERS) sum[k] += iv[k];
  add(sum.duration, iv.duration);
  add(sum.ttft, iv.ttft);
  for (const [name, ep] of Object.entries(iv.endpoints)) {
    const into = (sum.endpoints[name] ??= { ttft: [], attempts: 0, failures: 0 });
    into.attempts += ep.attempts;
    into.failures += ep.failures;
    add(into.ttft, ep.ttft);
  }
}

/** Quantiles in ms, to a tenth. */
const toMs = (q: number | null) => (q === null ? null : Math.round(q * 10_000) / 10);

function pointOf(iv: TrafficInterval): TrafficPoint {
  const seconds = Math.max(iv.ms, 1) / 1_000;
  return {
    t: new Date(iv.t).toISOString(),
    seconds: Math.round(seconds * 10) / 10,
    requests: iv.requests,
    rps: Math.round((iv.requests / seconds) * 100) / 100,
    errors: iv.serverErrors,
    clientErrors: iv.clientErrors,
    limited: iv.limited,
    retries: iv.retries,
    continuations: iv.continuations,
    hedges: iv.hedges,
    cacheHits: iv.cacheHits,
    cacheMisses: iv.cacheMisses,
    tokens: iv.promptTokens + iv.completionTokens,
    cost: Math.round(iv.cost * 1e9) / 1e9,
    latencyP50Ms: toMs(quantile(0.5, TRAFFIC_BUCKETS.duration, iv.duration)),
    latencyP95Ms: toMs(quantile(0.95, TRAFFIC_BUCKETS.duration, iv.duration)),
    ttftP50Ms: toMs(quantile(0.5, TRAFFIC_BUCKETS.ttft, iv.ttft)),
    ttftP95Ms: toMs(quantile(0.95, TRAFFIC_BUCKETS.ttft, iv.ttft)),
  };
}

function minus(b: readonly number[], a: readonly number[]): number[] {
  return b.map((n, i) => n - (a[i] ?? 0));
}

function add(into: number[], more: readonly number[]): void {
  more.forEach((n, i) => (into[i] = (into[i] ?? 0) + n));
}

/**
 * The dashboard's view of the intervals of one or more processes (WORKERS > 1): intervals starting at
 * the same time are summed, quantiles are taken from the summed buckets (as Prometheus'
 * histogram_quantile does), and per-endpoint figures cover the last `endpointWindowMs`.
 */
export function trafficView(
  processes: readonly (readonly TrafficInterval[])[],
  intervalMs: number,
  windowMs: number,
  endpointWindowMs = 300_000,
): TrafficView {
  // Workers' intervals starting at the same time are one interval of the gateway (lengths may differ
  // by a timer's jitter: the longest counts).
  const byStart = new Map<number, TrafficInterval>();
  for (const list of processes)
    for (const iv of list) {
      const sum = byStart.get(iv.t);
      if (sum) sumInto(sum, iv, Math.max(sum.ms, iv.ms));
      else byStart.set(iv.t, structuredClone(iv));
    }
  const sorted = [...byStart.values()].sort((x, y) => x.t - y.t);
  const points = sorted.map(pointOf);
  // The last minute (the running interval and those before it), for the dashboard's figures.
  const lastStart = sorted.at(-1)?.t ?? 0;
  const minute = emptyInterval(lastStart);
  for (const iv of sorted) if (iv.t > lastStart - 60_000) sumInto(minute, iv, minute.ms + iv.ms);
  const recentPoint = pointOf(minute);
  const recent = {
    ...recentPoint,
    tokensPerMinute: Math.round((recentPoint.tokens / Math.max(minute.ms, 1)) * 60_000),
  };
  const endpoints: TrafficView['endpoints'] = {};
  const since = (sorted.at(-1)?.t ?? 0) - endpointWindowMs + intervalMs;
  const window = emptyInterval(since);
  for (const iv of sorted) if (iv.t >= since) sumInto(window, iv, 0);
  for (const [name, ep] of Object.entries(window.endpoints))
    endpoints[name] = {
      attempts: ep.attempts,
      failures: ep.failures,
      errorRatio: ep.attempts > 0 ? Math.round((ep.failures / ep.attempts) * 1000) / 1000 : null,
      ttftP50Ms: toMs(quantile(0.5, TRAFFIC_BUCKETS.ttft, ep.ttft)),
      ttftP95Ms: toMs(quantile(0.95, TRAFFIC_BUCKETS.ttft, ep.ttft)),
    };
  return {
    object: 'traffic',
    intervalSeconds: intervalMs / 1_000,
    windowSeconds: windowMs / 1_000,
    points,
    recent,
    endpointWindowSeconds: endpointWindowMs / 1_000,
    endpoints,
    processes: processes.length,
  };
}

/**
 * The q-quantile of bucketed observations, interpolated linearly inside the bucket it falls in (as
 * Prometheus' histogram_quantile): `counts[i]` observations fell in (bounds[i-1], bounds[i]], the last
 * count above the last bound (answered with the last bound). Null without observations.
 */
export function quantile(q: number, bounds: readonly number[], counts: readonly number[]): number | null {
  const total = counts.reduce((s, n) => s + n, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i]!;
    if (seen + n >= rank && n > 0) {
      if (i >= bounds.length) return bounds.at(-1)!;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      return lower + (bounds[i]! - lower) * ((rank - seen) / n);
    }
    seen += n;
  }
  return bounds.at(-1)!;
}
