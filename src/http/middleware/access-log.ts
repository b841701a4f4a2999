import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pinoHttp } from 'pino-http';
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

/** Where controllers leave what the access line should carry. */
export function requestSummary(res: ServerResponse): RequestSummary {
  const r = res as ServerResponse & { gatewaySummary?: RequestSummary };
  r.gatewaySummary ??= {};
  return r.gatewaySummary;
}

/**
 * Request id (the client's `x-request-id` when it is sane, else a new UUID, echoed in the response) and
 * one JSON access line per request with model, endpoint, attempts, time to first byte and duration.
 * Headers are never logged: they carry keys.
 */
function summaryOf(res: ServerResponse): RequestSummary {
  const summary = (res as ServerResponse & { gatewaySummary?: RequestSummary }).gatewaySummary;
  return res.writableEnded ? (summary ?? {}) : { ...summary, errorCode: 'client_closed' };
}

/** Express rewrites req.url inside routers; the access line wants the path the client asked for. */
function path(req: IncomingMessage): string {
  return (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '';
}

export function accessLog(logger: Logger) {
  return pinoHttp({
    logger,
    // Our serializers read the raw objects: pino-http's wrapping would first copy every header.
    wrapSerializers: false,
    genReqId(req: IncomingMessage, res: ServerResponse) {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && CLIENT_REQUEST_ID.test(given) ? given : randomUUID();
      res.setHeader('x-request-id', id);
      return id;
    },
    serializers: {
      req: (req: IncomingMessage & { id?: unknown }) => ({ id: req.id, method: req.method, url: path(req) }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
    // The summary is merged into the access line itself: no child logger per request (pino-http's
    // customProps would build one when the request starts and another when it ends).
    customSuccessObject: (_req, res, value: Record<string, unknown>) => ({ ...value, ...summaryOf(res) }),
    // pino-http invents an Error (with a stack) for every 5xx; the status and errorCode say it all.
    customErrorObject: (_req, res, err: Error, value: Record<string, unknown>) => ({
      ...value,
      ...(err.message.startsWith('failed with status code') ? { err: undefined } : {}),
      ...summaryOf(res),
    }),
    customLogLevel(req, res, err) {
      if (path(req).startsWith('/health')) return 'debug';
      if (res.statusCode >= 500 || (err && res.writableEnded)) return 'error';
      if (res.statusCode >= 400) return 'warn';
      return 'info';
    },
    customSuccessMessage: (req, res) => `${req.method} ${path(req)} ${res.statusCode}`,
    customErrorMessage: (req, res) =>
      res.writableEnded
        ? `${req.method} ${path(req)} ${res.statusCode}`
        : `${req.method} ${path(req)} client closed`,
  });
}
