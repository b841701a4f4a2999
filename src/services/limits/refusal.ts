import { GatewayError } from '../../errors/gateway-error.js';
import type { AdmitResult, CheckState, CounterCheck } from '../../stores/counters/counter-store.js';
import type { Limits } from '../../stores/records/record-store.js';

/**
 * What a limited request is told: OpenAI's `x-ratelimit-*` headers on every answer, and the 429 that
 * names the limit, its scope and when to retry.
 */

/** One scope whose limits apply to a request. */
export interface Scope {
  /** Counter key part: `key:<id>`, `team:<id>`, `model:<id>`, `global`. */
  id: string;
  /** In words, for refusals: "key 'ci' (key_…)", "team 'research'", "model 'llama'", "the gateway". */
  label: string;
  limits: Limits;
}

export type CheckMeta = { scope: Scope; limit: 'rpm' | 'tpm' | 'maxParallel' | 'budget' };

/**
 * OpenAI's `x-ratelimit-*` headers: for requests and for tokens, the scope with the least remaining.
 */
export function rateLimitHeaders(
  checks: readonly CounterCheck[],
  states: readonly CheckState[],
): Record<string, string> {
  const headers: Record<string, string> = {};
  let requests: number | undefined;
  let tokens: number | undefined;
  for (let i = 0; i < checks.length; i++) {
    const kind = checks[i]!.kind;
    if (kind === 'count' && (requests === undefined || states[i]!.remaining < states[requests]!.remaining))
      requests = i;
    else if (kind === 'sum' && (tokens === undefined || states[i]!.remaining < states[tokens]!.remaining))
      tokens = i;
  }
  if (requests !== undefined) {
    headers['x-ratelimit-limit-requests'] = String(checks[requests]!.limit);
    headers['x-ratelimit-remaining-requests'] = String(states[requests]!.remaining);
    headers['x-ratelimit-reset-requests'] = formatDuration(states[requests]!.resetMs);
  }
  if (tokens !== undefined) {
    headers['x-ratelimit-limit-tokens'] = String(checks[tokens]!.limit);
    headers['x-ratelimit-remaining-tokens'] = String(states[tokens]!.remaining);
    headers['x-ratelimit-reset-tokens'] = formatDuration(states[tokens]!.resetMs);
  }
  return headers;
}

/**
 * OpenAI's duration format (Go's): `20ms`, `1s`, `6m0s`, `1h2m3s`, to a tenth of a second rounded up
 * (`1m0.1s`: a minute window's buckets are a tenth of a second).
 */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const tenths = Math.ceil(ms / 100);
  // An admitted request's minute windows reset a minute and a bucket from now: nearly every answer
  // says the same, written once.
  if (tenths === lastDuration.tenths) return lastDuration.text;
  const text = tenthsText(tenths);
  lastDuration.tenths = tenths;
  lastDuration.text = text;
  return text;
}

const lastDuration = { tenths: -1, text: '' };

function tenthsText(tenths: number): string {
  let s = Math.floor(tenths / 10);
  const fraction = tenths % 10 === 0 ? '' : `.${tenths % 10}`;
  const h = Math.floor(s / 3_600);
  s -= h * 3_600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (h > 0) return `${h}h${m}m${s}${fraction}s`;
  if (m > 0) return `${m}m${s}${fraction}s`;
  return `${s}${fraction}s`;
}

const LIMIT_WORDS = {
  rpm: (n: number) => `${n} request${n === 1 ? '' : 's'} per minute`,
  tpm: (n: number) => `${n} tokens per minute`,
  maxParallel: (n: number) => `${n} request${n === 1 ? '' : 's'} in flight at once`,
  budget: (n: number) => `a budget of ${n}`,
} as const;

/** The 429 for the first check that refused: which limit of which scope, and when to retry, in words. */
export function refusal(
  meta: CheckMeta,
  check: CounterCheck,
  result: Extract<AdmitResult, { ok: false }>,
  headers: Record<string, string>,
): RateLimitError {
  const error = refusalOf(meta, check, result, headers);
  // `key:…`, `team:…`, `model:…` or `global`: the scope's kind, for the metrics.
  error.scope = meta.scope.id.split(':', 1)[0]!;
  return error;
}

function refusalOf(
  meta: CheckMeta,
  check: CounterCheck,
  result: Extract<AdmitResult, { ok: false }>,
  headers: Record<string, string>,
): RateLimitError {
  const { scope, limit } = meta;
  const retryAfterSeconds = Number.isFinite(result.retryAfterMs)
    ? Math.max(1, Math.ceil(result.retryAfterMs / 1_000))
    : undefined;
  const when = retryAfterSeconds === undefined ? '' : ` Try again in ${humanSeconds(retryAfterSeconds)}.`;
  if (limit === 'budget') {
    const budget = scope.limits.budget!;
    const period = budget.period === 'total' ? 'in total' : `this ${budget.period}`;
    return new RateLimitError(
      `Budget exhausted for ${scope.label}: ${LIMIT_WORDS.budget(budget.amount)} ${period} has been spent.` +
        (budget.period === 'total' ? ' Ask the operator to raise it.' : when),
      'insufficient_quota',
      retryAfterSeconds,
      headers,
    );
  }
  if (limit === 'maxParallel')
    return new RateLimitError(
      `Too many requests in flight for ${scope.label}: at most ${LIMIT_WORDS.maxParallel(check.limit)}. ` +
        'Wait for one to finish, then try again.',
      'concurrency_limit_exceeded',
      retryAfterSeconds,
      headers,
    );
  return new RateLimitError(
    `Rate limit reached for ${scope.label}: ${LIMIT_WORDS[limit](check.limit)}.${when}`,
    'rate_limit_exceeded',
    retryAfterSeconds,
    headers,
  );
}

function humanSeconds(s: number): string {
  if (s < 120) return `${s} s`;
  if (s < 7_200) return `${Math.ceil(s / 60)} min`;
  return `${Math.ceil(s / 3_600)} h`;
}

export class RateLimitError extends GatewayError {
  /** The kind of scope whose limit refused: key, team, model or global. */
  scope = '';
  constructor(
    message: string,
    code: 'rate_limit_exceeded' | 'insufficient_quota' | 'concurrency_limit_exceeded',
    retryAfterSeconds: number | undefined,
    headers: Record<string, string>,
  ) {
    super(message, { code, retryAfterSeconds, headers });
  }
}
