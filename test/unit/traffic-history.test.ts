import { describe, expect, it } from 'vitest';
import { GatewayMetrics, TRAFFIC_BUCKETS } from '../../src/observability/metrics.js';
import {
  TrafficHistory,
  quantile,
  trafficView,
  type TrafficInterval,
} from '../../src/observability/traffic-history.js';

const INTERVAL = 5_000;

function request(metrics: GatewayMetrics, over: Partial<Parameters<GatewayMetrics['request']>[0]> = {}) {
  metrics.request({
    model: 'llama',
    status: 200,
    durationS: 0.2,
    ttftS: undefined,
    endpoint: 'gpu-a',
    overheadS: 0.0005,
    promptTokens: 10,
    completionTokens: 5,
    cost: 0.001,
    attempts: 1,
    continued: false,
    hedged: false,
    cache: undefined,
    ...over,
  });
}

/** A history over real metrics, on a clock the test moves. */
function history(keep = 4) {
  const metrics = new GatewayMetrics();
  let now = 1_000_000_000_000; // a multiple of the interval
  const clock = {
    now: () => now,
    advance: (ms: number) => (now += ms),
  };
  const h = new TrafficHistory(() => metrics.snapshot(), { intervalMs: INTERVAL, keep, now: clock.now });
  return { metrics, clock, h };
}

describe('quantile of bucketed observations', () => {
  const bounds = [0.1, 0.5, 1];

  it('interpolates inside the bucket the rank falls in, as histogram_quantile does', () => {
    // 10 observations in (0, 0.1], 10 in (0.1, 0.5].
    expect(quantile(0.5, bounds, [10, 10, 0, 0])).toBeCloseTo(0.1);
    expect(quantile(0.25, bounds, [10, 10, 0, 0])).toBeCloseTo(0.05);
    expect(quantile(0.75, bounds, [10, 10, 0, 0])).toBeCloseTo(0.3);
    expect(quantile(0.95, bounds, [0, 0, 20, 0])).toBeCloseTo(0.5 + 0.5 * 0.95);
  });

  it('answers the last bound above it, and null without observations', () => {
    expect(quantile(0.99, bounds, [0, 0, 0, 5])).toBe(1);
    expect(quantile(0.5, bounds, [0, 0, 0, 0])).toBeNull();
    expect(quantile(0.5, bounds, [])).toBeNull();
  });
});

describe('traffic history', () => {
  it('keeps what changed in each interval, aligned to the clock, and the running one last', () => {
    const { metrics, clock, h } = history();
    request(metrics);
    request(metrics, { status: 503 });
    clock.advance(INTERVAL);
    h.sample();
    request(metrics, { status: 429 });
    request(metrics, { status: 400, attempts: 3, hedged: true, continued: true });
    request(metrics, { ttftS: 0.04, endpoint: 'gpu-b' });
    metrics.attempt('openai-compatible', 'gpu-b', 'timeout');
    metrics.attempt('openai-compatible', 'gpu-b', 'success');
    metrics.attempt('openai-compatible', 'gpu-b', 'cancelled');
    clock.advance(2_000);

    const [first, running, ...rest] = h.intervals();
    expect(rest).toEqual([]);
    expect(first).toMatchObject({ t: 1_000_000_000_000, ms: INTERVAL, requests: 2, serverErrors: 1 });
    expect(first!.promptTokens).toBe(20);
    expect(first!.duration.reduce((a, b) => a + b, 0)).toBe(2);
    expect(running).toMatchObject({
      t: 1_000_000_005_000,
      ms: 2_000,
      requests: 3,
      serverErrors: 0,
      limited: 1,
      clientErrors: 1,
      retries: 2,
      hedges: 1,
      continuations: 1,
    });
    // Cancelled attempts (a lost race, a client gone) are not the endpoint's failures.
    expect(running!.endpoints['gpu-b']).toMatchObject({ attempts: 3, failures: 1 });
    expect(running!.endpoints['gpu-b']!.ttft.reduce((a, b) => a + b, 0)).toBe(1);
  });

  it('forgets intervals beyond what it keeps; a late or early timer stands for the nearest boundary', () => {
    const { metrics, clock, h } = history(2);
    for (let i = 0; i < 4; i++) {
      request(metrics);
      clock.advance(INTERVAL + (i % 2 === 0 ? 40 : -40));
      h.sample();
    }
    const closed = h.intervals().slice(0, -1);
    expect(closed.map((iv) => iv.t - 1_000_000_000_000)).toEqual([10_000, 15_000]);
    expect(closed.map((iv) => iv.requests)).toEqual([1, 1]);
  });

  it('the view sums the processes interval by interval, with rates, quantiles and the last minute', () => {
    const bounds = TRAFFIC_BUCKETS.duration;
    const counts = (at: number, n: number) => bounds.map((_, i) => (i === at ? n : 0)).concat([0]);
    const interval = (t: number, requests: number, ms = INTERVAL): TrafficInterval => ({
      t,
      ms,
      requests,
      serverErrors: 1,
      clientErrors: 0,
      limited: 0,
      retries: 0,
      continuations: 0,
      hedges: 0,
      cacheHits: 0,
      cacheMisses: 0,
      promptTokens: requests * 10,
      completionTokens: 0,
      cost: 0,
      // Every request took (0.15, 0.2] s.
      duration: counts(bounds.indexOf(0.2), requests),
      ttft: [],
      endpoints: { a: { ttft: [], attempts: requests, failures: 1 } },
    });
    const t0 = 1_000_000_000_000;
    const view = trafficView(
      [
        [interval(t0, 10), interval(t0 + INTERVAL, 20, 2_000)],
        [interval(t0, 5), interval(t0 + INTERVAL, 4, 1_990)],
      ],
      INTERVAL,
      900_000,
    );
    expect(view.processes).toBe(2);
    expect(view.windowSeconds).toBe(900);
    expect(view.points.map((p) => [p.requests, p.rps, p.errors])).toEqual([
      [15, 3, 2],
      [24, 12, 2],
    ]);
    // Half of them are below the middle of their bucket, by linear interpolation.
    const bucket = bounds.indexOf(0.2);
    expect(view.points[0]!.latencyP50Ms).toBeCloseTo(((bounds[bucket - 1]! + 0.2) / 2) * 1000, 0);
    expect(view.points[0]!.ttftP50Ms).toBeNull();
    expect(view.recent).toMatchObject({ requests: 39, seconds: 7, errors: 4, tokens: 390 });
    expect(view.recent.tokensPerMinute).toBe(Math.round((390 / 7_000) * 60_000));
    expect(view.endpoints.a).toMatchObject({ attempts: 39, failures: 4, errorRatio: 0.103 });
  });
});
