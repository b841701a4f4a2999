import type { IncomingHttpHeaders } from 'node:http';
import type { Timeouts } from '../config/types.js';
import { InvalidRequestError } from '../errors/gateway-error.js';

/**
 * Per-request timeout overrides, for clients that know better than the deployment defaults (a batch job
 * that tolerates a slow first token, a chat UI that would rather fail over sooner).
 */
const TIMEOUT_HEADERS = {
  'x-gateway-first-byte-timeout-ms': 'firstByteMs',
  'x-gateway-idle-timeout-ms': 'idleMs',
  'x-gateway-request-timeout-ms': 'totalMs',
  'x-gateway-min-bytes-per-second': 'minBytesPerSecond',
} as const satisfies Record<string, keyof Timeouts>;

const MAX_TIMEOUT_MS = 3_600_000;
const HEADERS = Object.entries(TIMEOUT_HEADERS);
/** What nearly every request has: no override. Shared, so that such a request allocates nothing here. */
const NO_OVERRIDES: Readonly<Partial<Timeouts>> = Object.freeze({});

export function timeoutOverrides(headers: IncomingHttpHeaders): Readonly<Partial<Timeouts>> {
  let out: Partial<Timeouts> | undefined;
  for (const [header, key] of HEADERS) {
    const raw = headers[header];
    if (raw === undefined) continue;
    const value = Array.isArray(raw) ? raw[0] : raw;
    const n = Number(value);
    const isRate = key === 'minBytesPerSecond';
    const valid =
      value !== undefined && /^\d+$/.test(value.trim()) && (isRate ? n >= 0 : n > 0 && n <= MAX_TIMEOUT_MS);
    if (!valid) {
      throw new InvalidRequestError(
        isRate
          ? `Header ${header} must be a whole number of bytes per second (0 turns the check off).`
          : `Header ${header} must be a whole number of milliseconds between 1 and ${MAX_TIMEOUT_MS}.`,
        { param: header, code: 'invalid_header' },
      );
    }
    out ??= {};
    out[key] = n;
  }
  return out ?? NO_OVERRIDES;
}
