import type { IncomingHttpHeaders } from 'node:http';
import { UpstreamRequestError } from '../../errors/gateway-error.js';
import type { AttemptFailure } from '../core/outcomes.js';
import { parseRetryAfterMs } from './retry-policy.js';

const MAX_MESSAGE_CHARS = 500;

interface Parsed {
  message: string;
  type?: string;
  code?: string | null;
  param?: string | null;
}

/**
 * Reads an upstream error body in any of the shapes OpenAI-compatible servers use (OpenAI's
 * `{error:{message}}`, vLLM's older `{object:"error",message}`, FastAPI's `{detail}`, plain text) and
 * keeps its message for the client.
 */
export function parseUpstreamError(status: number, body: string): Parsed {
  const fallback = `The upstream model server answered HTTP ${status}.`;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    const text = body.trim();
    if (/^<(!doctype|html|\?xml|head|body)/i.test(text)) {
      // A proxy's or ingress's error page: its title is the only useful part.
      const title = /<title[^>]*>([^<]{1,200})<\/title>/i.exec(text)?.[1]?.trim();
      return { message: title ? `${title} (HTML error page)` : `${fallback} (HTML error page)` };
    }
    return { message: text ? truncate(text) : fallback };
  }
  if (json === null || typeof json !== 'object') return { message: fallback };
  const o = json as Record<string, unknown>;
  const err = o.error;
  if (err !== null && typeof err === 'object') {
    const e = err as Record<string, unknown>;
    return {
      message: typeof e.message === 'string' && e.message ? truncate(e.message) : fallback,
      type: typeof e.type === 'string' ? e.type : undefined,
      code: typeof e.code === 'string' ? e.code : typeof e.code === 'number' ? String(e.code) : null,
      param: typeof e.param === 'string' ? e.param : null,
    };
  }
  if (typeof err === 'string' && err) return { message: truncate(err) };
  if (typeof o.message === 'string' && o.message) {
    return { message: truncate(o.message), type: typeof o.type === 'string' ? o.type : undefined };
  }
  if (typeof o.detail === 'string' && o.detail) return { message: truncate(o.detail) };
  if (Array.isArray(o.detail)) return { message: truncate(JSON.stringify(o.detail)) };
  return { message: fallback };
}

export function upstreamRequestError(status: number, body: string): UpstreamRequestError {
  const parsed = parseUpstreamError(status, body);
  const type = parsed.type && /^[a-z_]+$/.test(parsed.type) ? parsed.type : 'invalid_request_error';
  return new UpstreamRequestError(status, parsed.message, { type, code: parsed.code, param: parsed.param });
}

function truncate(s: string): string {
  return s.length > MAX_MESSAGE_CHARS ? `${s.slice(0, MAX_MESSAGE_CHARS)}…` : s;
}

/** A non-2xx answer as an attempt failure: its status, Retry-After, and its message in words. */
export function upstreamHttpFailure(
  status: number,
  headers: IncomingHttpHeaders,
  body: Buffer,
  apiKey: string | undefined,
): AttemptFailure {
  // Some servers echo the key they were sent in their error text: it must go no further.
  const text = redactSecret(body.toString('utf8'), apiKey);
  return {
    kind: 'http',
    status,
    retryAfterMs: parseRetryAfterMs(headers, Date.now()),
    message: `HTTP ${status}: ${describeStatus(status, text, headers.location)}`,
    body: text,
  };
}

function describeStatus(status: number, text: string, location: string | string[] | undefined): string {
  if (status === 401 || status === 403) return 'the upstream rejected the gateway credentials';
  if (status >= 300 && status < 400) {
    return `redirect to ${String(location ?? 'an unknown location')} (fix the endpoint url)`;
  }
  return parseUpstreamError(status, text).message;
}

function redactSecret(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('[redacted]') : text;
}
