import type { AttemptFailure } from '../core/outcomes.js';

/**
 * What to do after one failed attempt: the outcome table ("What happens when an upstream fails" in the README) in one place.
 *
 * Before the first byte reaches the client every failure of an endpoint moves on to the next candidate;
 * only a request the upstream itself rejects as bad (400, 413, 422, other 4xx) goes back to the client,
 * because another endpoint would reject it the same way.
 */
export type Decision =
  /** Try another candidate; `backoff` asks for a jittered pause first; `exclude` bars this endpoint for the rest of the request. */
  | {
      action: 'retry';
      health: 'failure' | 'cooldown' | 'model-missing' | 'misconfigured';
      backoff: boolean;
      exclude: boolean;
    }
  /** Give the upstream's answer to the client as it is. */
  | { action: 'return' };

const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 500, 502, 503, 504]);

export function decide(failure: AttemptFailure): Decision {
  switch (failure.kind) {
    case 'connect':
      return { action: 'retry', health: 'failure', backoff: false, exclude: false };
    case 'timeout':
    case 'bad-response':
    case 'error-event':
      return { action: 'retry', health: 'failure', backoff: true, exclude: false };
    case 'http':
      return decideStatus(failure.status);
  }
}

function decideStatus(status: number): Decision {
  if (status === 429) return { action: 'retry', health: 'cooldown', backoff: false, exclude: false };
  // Our configured key for that endpoint is wrong: another endpoint may work, this one will not.
  if (status === 401 || status === 403)
    return { action: 'retry', health: 'misconfigured', backoff: false, exclude: true };
  if (status === 404) return { action: 'retry', health: 'model-missing', backoff: false, exclude: true };
  // A redirect means the endpoint URL is wrong (often http:// in front of an https-only ingress).
  if (status >= 300 && status < 400)
    return { action: 'retry', health: 'misconfigured', backoff: false, exclude: true };
  // 408 and every 5xx (including ones such as 520+ from CDNs in front of a provider) are the endpoint's trouble.
  if (RETRYABLE_STATUSES.has(status) || status >= 500)
    return { action: 'retry', health: 'failure', backoff: true, exclude: false };
  return { action: 'return' };
}

/** Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^(retry-1))). */
export function backoffMs(retry: number, random: () => number, baseMs = 100, capMs = 2_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}

/** 429 without a Retry-After still cools the endpoint down briefly. */
export const DEFAULT_COOLDOWN_MS = 2_000;
/** Longest Retry-After the gateway waits out itself before answering the client with 503 instead. */
export const MAX_WAIT_FOR_RECOVERY_MS = 5_000;

/**
 * Parses Retry-After (seconds or an HTTP date, RFC 9110 §10.2.3) and the non-standard `retry-after-ms`
 * that OpenAI-compatible servers send.
 */
export function parseRetryAfterMs(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  now: number,
): number | undefined {
  const ms = first(headers['retry-after-ms']);
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const value = first(headers['retry-after'])?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
