import type { Request, Response } from 'express';
import { Agent, request, type Dispatcher } from 'undici';
import { GatewayError } from '../errors/gateway-error.js';
import { requestIdOf } from './middleware/access-log.js';

/**
 * Routes that are a chat completion asked of this gateway itself (`/gateway/query`, `/v1/messages`):
 * over loopback with the caller's credentials, so that routing, failover, limits, the cache, the ledger
 * and the metrics apply exactly as to `/v1/chat/completions` (one ledger record, one set of metrics).
 *
 * The loopback client: no header or body timeout of its own (the chat route's timeouts bound the
 * answer, up to REQUEST_TIMEOUT_MS), and no bound on connections: each request holds one for as long
 * as its answer streams (minutes for a coding agent), so a bound would queue the next callers.
 */
const loopback = new Agent({ headersTimeout: 0, bodyTimeout: 0 });

/**
 * Client headers not passed to the inner request: the connection's own, the body's (it is written
 * anew), and the Anthropic key header (already read as the Authorization header).
 */
const NOT_PASSED = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'content-length',
  'content-type',
  'content-encoding',
  'accept-encoding',
  'x-api-key',
]);

/** Headers of the chat route's answer that tell the caller about limits, the endpoint and the cache. */
export function passedOnHeader(name: string): boolean {
  return (
    name.startsWith('x-ratelimit-') ||
    name === 'retry-after' ||
    name === 'x-gateway-endpoint' ||
    name === 'x-gateway-attempts' ||
    name === 'x-gateway-fallback-model' ||
    name === 'x-cache'
  );
}

export interface SelfAnswer {
  answer: Dispatcher.ResponseData;
  /** Stops listening for the client leaving (call once the answer is read). */
  release: () => void;
}

/**
 * Asks this gateway's chat route: undefined when the client left before the answer (the inner
 * request, and so the upstream call, is stopped when the client leaves at any time until release()).
 */
export async function askSelf(
  selfUrl: string,
  req: Request,
  res: Response,
  body: object,
): Promise<SelfAnswer | undefined> {
  const aborted = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) aborted.abort();
  };
  res.once('close', onClose);
  const release = () => res.removeListener('close', onClose);
  try {
    const answer = await request(`${selfUrl}/v1/chat/completions`, {
      method: 'POST',
      dispatcher: loopback,
      signal: aborted.signal,
      headers: innerHeaders(req),
      body: JSON.stringify(body),
    });
    return { answer, release };
  } catch (err) {
    release();
    if (aborted.signal.aborted) return undefined;
    throw new GatewayError(`The gateway could not ask itself: ${(err as Error).message}.`, {
      code: 'server_shutting_down',
      retryable: true,
      retryAfterSeconds: 1,
    });
  }
}

/**
 * The inner request's headers: the client's (its key, session, trace context, per-request timeout,
 * cache control, forwarded headers…) as the chat route would have had them, with the request's id.
 */
function innerHeaders(req: Request): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const name in req.headers) {
    const value = req.headers[name];
    if (value !== undefined && !NOT_PASSED.has(name)) headers[name] = value;
  }
  headers['content-type'] = 'application/json';
  headers['x-request-id'] = requestIdOf(req);
  return headers;
}
