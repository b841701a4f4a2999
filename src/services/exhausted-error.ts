import {
  BadGatewayError,
  GatewayTimeoutError,
  ModelNotFoundError,
  NoEndpointAvailableError,
  type GatewayError,
} from '../errors/gateway-error.js';
import type { AttemptFailure } from './retry-policy.js';

export interface FailedAttempt {
  endpoint: string;
  failure: AttemptFailure;
}

/**
 * The error for a request whose every candidate failed before commit: 404 when every endpoint said the
 * model is missing, 502 when upstreams answered badly (the client cannot fix it, the operator can), 504
 * when they all timed out, else 503 with Retry-After set to the soonest recovery.
 */
export function exhaustedError(
  model: string,
  failures: readonly FailedAttempt[],
  msUntilRecovery: number | undefined,
): GatewayError {
  const summary = summarize(failures);
  const last = failures.at(-1)?.failure;
  if (failures.length > 0 && failures.every((f) => f.failure.kind === 'http' && f.failure.status === 404)) {
    return new ModelNotFoundError(model);
  }
  const prefix = `No endpoint could answer for model '${model}'`;
  if (last?.kind === 'http' && last.status !== 429) {
    const code =
      last.status === 401 || last.status === 403
        ? 'upstream_auth_error'
        : last.status >= 300 && last.status < 400
          ? 'upstream_redirect'
          : 'upstream_error';
    return new BadGatewayError(`${prefix}; upstream errors: ${summary}`, code);
  }
  if (last?.kind === 'bad-response') {
    return new BadGatewayError(`${prefix}; upstream errors: ${summary}`, 'upstream_invalid_response');
  }
  if (failures.length > 0 && failures.every((f) => f.failure.kind === 'timeout')) {
    const phase = last?.kind === 'timeout' ? last.phase : 'first-byte';
    return new GatewayTimeoutError(
      `${prefix} in time: ${summary}`,
      phase === 'connect' ? 'connect_timeout' : 'first_byte_timeout',
    );
  }
  const retryAfterSeconds = Math.max(1, Math.ceil((msUntilRecovery ?? 1_000) / 1000));
  const detail = summary ? `; ${summary}` : ': every endpoint is unavailable, drained or cooling down';
  return new NoEndpointAvailableError(
    `No endpoint is available for model '${model}' right now${detail}. Retry in ${retryAfterSeconds} s.`,
    retryAfterSeconds,
  );
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
