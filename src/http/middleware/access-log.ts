import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { Logger } from '../../observability/logger.js';

const CLIENT_REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

export interface RequestSummary {
  model?: string;
  stream?: boolean;
  servedModel?: string;
  endpoint?: string;
  attempts?: number;
  ttfbMs?: number;
  upstreamStatus?: number;
  errorCode?: string;
}

interface AccessRecord {
  id: string;
  summary: RequestSummary;
}

const RECORD = Symbol('gateway.access');
type Tracked = ServerResponse & { [RECORD]?: AccessRecord };

/** Where controllers leave what the access line should carry. */
export function requestSummary(res: ServerResponse): RequestSummary {
  const r = res as Tracked;
  r[RECORD] ??= { id: '', summary: {} };
  return r[RECORD].summary;
}

/** The request's id (the client's `x-request-id` when it is sane, else a new UUID). */
export function requestIdOf(res: ServerResponse): string {
  return (res as Tracked)[RECORD]?.id ?? '';
}

/**
 * Request id (echoed in `x-request-id`) and one JSON access line per request, written when the response
 * closes: method, path, status, response time in ms, and what the controllers put in the summary
 * (model, endpoint, attempts, time to first byte, error code). A response closed before its end is
 * logged as `client closed`.
 *
 * The line is built from that allow-list of fields only (never headers or bodies), so it skips pino's
 * redaction pass, which costs more than the rest of the line; every other log line keeps it. Our own
 * rather than pino-http, which makes two child loggers and three listeners per request.
 */
export function accessLog(
  logger: Logger,
  now: () => number = performance.now.bind(performance),
): RequestHandler {
  // Level 'trace': whether a line is written is decided by the main logger's level, which a
  // configuration reload may change (a child would keep the level it was made with).
  const lines = logger.child({}, { redact: [], level: 'trace' });
  return (req, res, next) => {
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && CLIENT_REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('x-request-id', id);
    const tracked = res as Tracked;
    const record = tracked[RECORD] ?? { id, summary: {} };
    record.id = id;
    tracked[RECORD] = record;
    const method = req.method;
    // The path the client asked for: express rewrites req.url inside routers.
    const url = req.url;
    const startedAt = now();
    const write = (closedAt: number) => {
      const level = levelOf(url, res);
      if (!logger.isLevelEnabled(level)) return;
      const ended = res.writableEnded;
      const line = {
        req: { id, method, url },
        res: { statusCode: res.statusCode },
        responseTime: Math.round((closedAt - startedAt) * 100) / 100,
        ...record.summary,
        ...(ended ? undefined : { errorCode: 'client_closed' }),
      };
      lines[level](line, `${method} ${url} ${ended ? res.statusCode : 'client closed'}`);
    };
    // The close can come before the controller's own bookkeeping after the last byte (the upstream
    // status, the endpoint): the line is written once the promise jobs of this turn have run.
    res.once('close', () => setImmediate(write, now()));
    next();
  };
}

function levelOf(url: string, res: ServerResponse): 'debug' | 'info' | 'warn' | 'error' {
  if (url.startsWith('/health')) return 'debug';
  if (res.statusCode >= 500) return 'error';
  if (res.statusCode >= 400) return 'warn';
  return 'info';
}
