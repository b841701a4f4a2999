import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RequestHandler } from 'express';
import { NotFoundError } from '../../errors/gateway-error.js';

/** The page's files: src/dashboard/ beside this code (dist/dashboard/ once built; `npm run build` copies them). */
const DIRECTORY = fileURLToPath(new URL('../../dashboard/', import.meta.url));
const FILES: Record<string, { file: string; type: string }> = {
  '/dashboard': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
};

/**
 * Only this gateway's own files and admin API: no inline script, no other origin, never in a frame
 * (the admin key is typed into this page).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * `GET /dashboard`: the operator's page, served by the gateway itself (no build step: plain HTML, CSS
 * and a JavaScript module). It holds no data: everything it shows comes from the admin API with the
 * admin key typed into it.
 */
export function dashboard(directory = DIRECTORY): RequestHandler {
  const cache = new Map<string, Buffer>();
  return (req, res, next) => {
    const entry = FILES[req.path];
    if (!entry)
      return next(
        new NotFoundError(
          `Unknown route: ${req.method} ${req.path.slice(0, 200)}. The dashboard is GET /dashboard.`,
          {
            code: 'route_not_found',
          },
        ),
      );
    let body = cache.get(entry.file);
    if (!body) {
      body = readFileSync(directory + entry.file);
      cache.set(entry.file, body);
    }
    res.setHeader('content-type', entry.type);
    res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    res.setHeader('x-frame-options', 'DENY');
    res.setHeader('cache-control', 'no-cache');
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
