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
 * answer, up to REQUEST_TIMEOUT_MS), a few connections kept alive.
 */
const loopback = new Agent({ headersTimeout: 0, bodyTimeout: 0, connections: 16 });

/** Headers of the chat route's answer that tell the caller about limits, the endpoint and the cache. */
export function passedOnHeader(name: string): boolean {
  return (
    name.startsWith('x-ratelimit-') ||
    name === 'retry-after' ||
    name === 'x-gateway-endpoint' ||
    name === 'x-gateway-attempts' ||
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
      headers: {
        'content-type': 'application/json',
        'x-request-id': requestIdOf(req),
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        ...(typeof req.headers['cache-control'] === 'string'
          ? { 'cache-control': req.headers['cache-control'] }
          : {}),
      },
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
