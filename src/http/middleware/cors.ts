import type { RequestHandler } from 'express';

/**
 * What a browser client may read of an answer: the request id (also as Anthropic's `request-id`), where
 * it went, `Retry-After`, the cache's verdict and OpenAI's rate-limit headers.
 */
const EXPOSED_HEADERS = [
  'x-request-id',
  'request-id',
  'x-gateway-endpoint',
  'x-gateway-attempts',
  'x-gateway-fallback-model',
  'retry-after',
  'x-cache',
  ...['limit', 'remaining', 'reset'].flatMap((what) =>
    ['requests', 'tokens'].map((of) => `x-ratelimit-${what}-${of}`),
  ),
].join(', ');

/** CORS for browser clients: `*` or an allow-list of origins; answers preflight requests itself. */
export function cors(origins: () => readonly string[]): RequestHandler {
  return (req, res, next) => {
    const origin = req.headers.origin;
    const allowed = origins();
    const any = allowed.includes('*');
    // With an allow-list every answer depends on the origin (allowed or not), so caches must key on it.
    if (!any) res.vary('origin');
    if (origin !== undefined && (any || allowed.includes(origin))) {
      res.setHeader('access-control-allow-origin', any ? '*' : origin);
      res.setHeader('access-control-expose-headers', EXPOSED_HEADERS);
    }
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      res.vary('access-control-request-headers');
      res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
      res.setHeader(
        'access-control-allow-headers',
        req.headers['access-control-request-headers'] ?? 'authorization, content-type',
      );
      res.setHeader('access-control-max-age', '600');
      res.status(204).end();
      return;
    }
    next();
  };
}
