import { describe, expect, it } from 'vitest';
import { backoffMs, decide, parseRetryAfterMs } from '../../src/services/forwarder/retry-policy.js';

const http = (status: number) => ({
  kind: 'http' as const,
  status,
  retryAfterMs: undefined,
  message: '',
  body: '',
});

describe('decide: the outcome table', () => {
  it.each([500, 502, 503, 504, 408, 520])('%i moves on with backoff and counts as a failure', (status) => {
    expect(decide(http(status))).toEqual({
      action: 'retry',
      health: 'failure',
      backoff: true,
      exclude: false,
    });
  });

  it('429 moves on and cools the endpoint down, not an error', () => {
    expect(decide(http(429))).toMatchObject({ action: 'retry', health: 'cooldown' });
  });

  it.each([401, 403])(
    '%i (our key is wrong) moves on, bars the endpoint, logged as misconfiguration',
    (status) => {
      expect(decide(http(status))).toEqual({
        action: 'retry',
        health: 'misconfigured',
        backoff: false,
        exclude: true,
      });
    },
  );

  it('404 moves on and removes the model from that endpoint', () => {
    expect(decide(http(404))).toMatchObject({ action: 'retry', health: 'model-missing', exclude: true });
  });

  it.each([400, 409, 413, 415, 422])('%i is the request’s own fault: returned to the client', (status) => {
    expect(decide(http(status))).toEqual({ action: 'return' });
  });

  it('connection errors move on without backoff; timeouts and empty answers with backoff', () => {
    expect(decide({ kind: 'connect', code: 'ECONNREFUSED', message: '' })).toMatchObject({
      action: 'retry',
      backoff: false,
    });
    expect(decide({ kind: 'timeout', phase: 'first-byte', message: '' })).toMatchObject({
      action: 'retry',
      backoff: true,
    });
    expect(decide({ kind: 'bad-response', message: '' })).toMatchObject({
      action: 'retry',
      health: 'failure',
    });
  });
});

describe('backoffMs', () => {
  it('is full jitter under an exponential ceiling with a cap', () => {
    expect(backoffMs(1, () => 0.999)).toBe(99);
    expect(backoffMs(2, () => 0.999)).toBe(199);
    expect(backoffMs(10, () => 0.999)).toBe(1998);
    expect(backoffMs(3, () => 0)).toBe(0);
  });
});

describe('parseRetryAfterMs', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads seconds, HTTP dates and retry-after-ms', () => {
    expect(parseRetryAfterMs({ 'retry-after': '7' }, now)).toBe(7000);
    expect(parseRetryAfterMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' }, now)).toBe(30_000);
    expect(parseRetryAfterMs({ 'retry-after-ms': '250' }, now)).toBe(250);
    expect(parseRetryAfterMs({ 'retry-after-ms': '1.5', 'retry-after': '9' }, now)).toBe(2);
  });
  it('ignores garbage and past dates never go negative', () => {
    expect(parseRetryAfterMs({ 'retry-after': 'soon' }, now)).toBeUndefined();
    expect(parseRetryAfterMs({}, now)).toBeUndefined();
    expect(parseRetryAfterMs({ 'retry-after': 'Wed, 31 Dec 2025 00:00:00 GMT' }, now)).toBe(0);
  });
});
