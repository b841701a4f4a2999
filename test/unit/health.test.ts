import { describe, expect, it } from 'vitest';
import { HealthMonitor } from '../../src/services/endpoints/health.js';

function monitor(names: string[], overrides: Partial<{ maxEjectedPercent: number }> = {}) {
  let now = 1_000_000;
  const m = new HealthMonitor({
    ejection: {
      consecutiveFailures: 3,
      failureRatio: 0.5,
      minRequests: 10,
      baseEjectionMs: 10_000,
      maxEjectionMs: 60_000,
      maxEjectedPercent: 50,
      ...overrides,
    },
    now: () => now,
  });
  for (const n of names) m.get(n);
  return { m, advance: (ms: number) => (now += ms), now: () => now };
}

function fail(m: HealthMonitor, name: string, times = 1) {
  for (let i = 0; i < times; i++) m.failure(m.begin(name), 'connect', 'refused');
}

describe('HealthMonitor', () => {
  it('ejects after consecutive failures, then lets one half-open trial through', () => {
    const { m, advance, now } = monitor(['a', 'b']);
    fail(m, 'a', 2);
    expect(m.get('a').state(now())).toBe('healthy');
    fail(m, 'a');
    expect(m.get('a').state(now())).toBe('ejected');
    expect(m.get('a').availableAt(now(), undefined)).toBe(now() + 10_000);
    advance(10_000);
    expect(m.get('a').state(now())).toBe('half-open');
    const trial = m.begin('a');
    expect(trial.isTrial).toBe(true);
    // Only one trial at a time.
    expect(m.get('a').availableAt(now(), undefined)).toBeGreaterThan(now());
    m.success(trial, { latencyMs: 50, ttfbMs: 20 });
    expect(m.get('a').state(now())).toBe('healthy');
    expect(m.get('a').inFlight).toBe(0);
    expect(m.get('a').ewmaTtfbMs).toBe(20);
  });

  it('a failed trial ejects again for twice as long, capped', () => {
    const { m, advance, now } = monitor(['a', 'b']);
    fail(m, 'a', 3);
    advance(10_000);
    fail(m, 'a');
    expect(m.get('a').ejectedUntil - now()).toBe(20_000);
    advance(20_000);
    fail(m, 'a');
    expect(m.get('a').ejectedUntil - now()).toBe(40_000);
    advance(40_000);
    fail(m, 'a');
    expect(m.get('a').ejectedUntil - now()).toBe(60_000);
  });

  it('a success resets the consecutive failure count', () => {
    const { m, now } = monitor(['a', 'b']);
    fail(m, 'a', 2);
    m.success(m.begin('a'));
    fail(m, 'a', 2);
    expect(m.get('a').state(now())).toBe('healthy');
  });

  it('never ejects more than maxEjectedPercent of the endpoints', () => {
    const { m, now } = monitor(['a', 'b', 'c', 'd']);
    fail(m, 'a', 3);
    fail(m, 'b', 3);
    fail(m, 'c', 3);
    const states = ['a', 'b', 'c'].map((n) => m.get(n).state(now()));
    expect(states.filter((s) => s === 'ejected')).toHaveLength(2);
  });

  it('429 cools down for Retry-After without counting as a failure', () => {
    const { m, advance, now } = monitor(['a']);
    m.rateLimited(m.begin('a'), 3_000);
    expect(m.get('a').state(now())).toBe('cooling-down');
    expect(m.get('a').consecutiveFailures).toBe(0);
    expect(m.get('a').availableAt(now(), undefined)).toBe(now() + 3_000);
    advance(3_000);
    expect(m.get('a').state(now())).toBe('healthy');
  });

  it('maxConcurrent makes a full endpoint unavailable until a request ends', () => {
    const { m, now } = monitor(['a']);
    const t1 = m.begin('a');
    expect(m.get('a').availableAt(now(), 1)).toBeGreaterThan(now());
    m.release(t1);
    expect(m.get('a').availableAt(now(), 1)).toBe(0);
  });

  it('settling a ticket twice counts once', () => {
    const { m } = monitor(['a']);
    const t = m.begin('a');
    m.failure(t, 'timeout', 'x');
    m.failure(t, 'timeout', 'x');
    m.release(t);
    expect(m.get('a').failures).toBe(1);
    expect(m.get('a').inFlight).toBe(0);
  });

  it('ejects on the error ratio over the recent window even without consecutive failures', () => {
    const { m, now } = monitor(['a', 'b']);
    // Alternating failure and success: never 3 in a row, but over half of the last 11.
    for (let i = 0; i < 11; i++) {
      if (i % 2 === 0) fail(m, 'a');
      else m.success(m.begin('a'));
    }
    expect(m.get('a').state(now())).toBe('ejected');
  });

  it('does not judge the ratio before minRequests outcomes are known', () => {
    const { m, now } = monitor(['a', 'b']);
    fail(m, 'a');
    m.success(m.begin('a'));
    fail(m, 'a');
    expect(m.get('a').errorRatio).toBeCloseTo(2 / 3);
    expect(m.get('a').state(now())).toBe('healthy');
  });

  it('active probes: failures eject a dead endpoint, a success makes an ejected one half-open at once', () => {
    const { m, now } = monitor(['a', 'b']);
    for (let i = 0; i < 3; i++) m.probeFailed(m.get('a'), 'connect', 'connection refused');
    expect(m.get('a').state(now())).toBe('ejected');
    expect(m.get('a').probeFailing).toBe(true);
    m.probeSucceeded(m.get('a'));
    expect(m.get('a').state(now())).toBe('half-open');
    expect(m.begin('a').isTrial).toBe(true);
  });

  it('a probe does not end an ejection caused by failed requests: only a successful trial request does', () => {
    const { m, advance, now } = monitor(['a', 'b']);
    const streams = (n: number) => {
      for (let i = 0; i < n; i++) m.failure(m.begin('a'), 'stream-error', 'stream broke mid-answer');
    };
    streams(3);
    expect(m.get('a').state(now())).toBe('ejected');
    // GET /v1/models answers fine, but the streams keep breaking: the back-off holds.
    m.probeSucceeded(m.get('a'));
    expect(m.get('a').state(now())).toBe('ejected');
    advance(10_000);
    expect(m.get('a').state(now())).toBe('half-open');
    m.probeSucceeded(m.get('a'));
    expect(m.get('a').state(now())).toBe('half-open');
    // The trial breaks too: ejected for twice as long, probes or not.
    streams(1);
    m.probeSucceeded(m.get('a'));
    expect(m.get('a').state(now())).toBe('ejected');
    advance(19_999);
    expect(m.get('a').state(now())).toBe('ejected');
    advance(1);
    const trial = m.begin('a');
    expect(trial.isTrial).toBe(true);
    m.success(trial);
    expect(m.get('a').state(now())).toBe('healthy');
  });

  it('never ejects a lone endpoint: the pool must not empty itself', () => {
    const { m, now } = monitor(['solo']);
    fail(m, 'solo', 10);
    expect(m.get('solo').state(now())).toBe('healthy');
    expect(m.get('solo').consecutiveFailures).toBe(10);
  });
});
