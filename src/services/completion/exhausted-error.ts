import {
  BadGatewayError,
  GatewayTimeoutError,
  ModelNotFoundError,
  NoEndpointAvailableError,
  type GatewayError,
} from '../../errors/gateway-error.js';
import type { ErrorCode } from '../../errors/codes.js';
import type { AttemptFailure } from '../core/outcomes.js';

export interface FailedAttempt {
  endpoint: string;
  failure: AttemptFailure;
}

/** Upstream statuses that mean "not now" rather than "broken": the request may succeed later. */
const UNAVAILABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 503, 504]);

/**
 * The error for a request whose every candidate failed before commit: 404 when every endpoint said the
 * model is missing; 502 when some upstream answered badly (garbage, an error event, 500, 502, rejected
 * credentials, a redirect: the client cannot fix it, the operator can); 504 when they all timed out;
 * else 503 with Retry-After (upstreams that said "unavailable" or "rate limited", refused connections,
 * nothing available): the upstreams' own Retry-After when they gave one, else the soonest recovery.
 */
export function exhaustedError(
  model: string,
  failures: readonly FailedAttempt[],
  msUntilRecovery: number | undefined,
): GatewayError {
  const summary = summarize(failures);
  if (failures.length > 0 && failures.every((f) => f.failure.kind === 'http' && f.failure.status === 404)) {
    return new ModelNotFoundError(model);
  }
  const prefix = `No endpoint could answer for model '${model}'`;
  const bad = failures.findLast((f) => isBadAnswer(f.failure))?.failure;
  if (bad) return new BadGatewayError(`${prefix}; upstream errors: ${summary}`, badAnswerCode(bad));
  if (failures.length > 0 && failures.every((f) => f.failure.kind === 'timeout')) {
    const last = failures.at(-1)!.failure;
    const phase = last.kind === 'timeout' ? last.phase : 'first-byte';
    return new GatewayTimeoutError(
      `${prefix} in time: ${summary}`,
      phase === 'connect' ? 'connect_timeout' : 'first_byte_timeout',
    );
  }
  let retryAfterMs: number | undefined;
  for (const { failure } of failures) {
    if (failure.kind === 'http' && failure.retryAfterMs !== undefined)
      retryAfterMs = Math.min(retryAfterMs ?? Infinity, failure.retryAfterMs);
  }
  const retryAfterSeconds = Math.max(1, Math.ceil((retryAfterMs ?? msUntilRecovery ?? 1_000) / 1000));
  const detail = summary ? `; ${summary}` : ': every endpoint is unavailable, drained or cooling down';
  return new NoEndpointAvailableError(
    `No endpoint is available for model '${model}' right now${detail}. Retry in ${retryAfterSeconds} s.`,
    retryAfterSeconds,
  );
}

function isBadAnswer(failure: AttemptFailure): boolean {
  if (failure.kind === 'bad-response' || failure.kind === 'error-event') return true;
  return failure.kind === 'http' && failure.status !== 404 && !UNAVAILABLE_STATUSES.has(failure.status);
}

function badAnswerCode(failure: AttemptFailure): ErrorCode {
  if (failure.kind === 'bad-response') return 'upstream_invalid_response';
  if (failure.kind !== 'http') return 'upstream_error';
  if (failure.status === 401 || failure.status === 403) return 'upstream_auth_error';
  if (failure.status >= 300 && failure.status < 400) return 'upstream_redirect';
  return 'upstream_error';
}

/** "a: HTTP 502: Bad Gateway (×2); b: connection refused": one entry per distinct failure. */
function summarize(failures: readonly FailedAttempt[]): string {
  const counts = new Map<string, number>();
  for (const f of failures) {
    const key = `${f.endpoint}: ${f.failure.message}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, n]) => (n > 1 ? `${key} (×${n})` : key)).join('; ');
}
