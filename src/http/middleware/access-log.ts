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
/** Express rewrites req.url inside routers; the access line wants the path the client asked for. */
function path(req: IncomingMessage): string {
  return (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '';
}

export function accessLog(logger: Logger) {
  return pinoHttp({
    logger,
    genReqId(req: IncomingMessage, res: ServerResponse) {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && CLIENT_REQUEST_ID.test(given) ? given : randomUUID();
      res.setHeader('x-request-id', id);
      return id;
    },
    serializers: {
      // pino-http hands the serializer its own view of the request; `raw` is the express request.
      req: (req: { id: unknown; method: string; url: string; raw?: IncomingMessage }) => ({
        id: req.id,
        method: req.method,
        url: req.raw ? path(req.raw) : req.url,
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
    customProps: (_req, res) => ({
      ...(res as ServerResponse & { gatewaySummary?: RequestSummary }).gatewaySummary,
      ...(res.writableEnded ? {} : { errorCode: 'client_closed' }),
    }),
    // pino-http invents an Error (with a stack) for every 5xx; the status and errorCode say it all.
    customErrorObject: (_req, _res, err: Error, value: Record<string, unknown>) =>
      err.message.startsWith('failed with status code') ? { ...value, err: undefined } : value,
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
