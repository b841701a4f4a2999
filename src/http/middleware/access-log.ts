import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { pinoHttp, type Options } from 'pino-http';
import type { Logger } from '../../observability/logger.js';
import type { RequestTrace } from '../../services/core/request.js';

const CLIENT_REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

/** Where a response keeps what its access line carries (see request-shape.ts). */
export const TRACE = Symbol('gateway.trace');
type Traced = ServerResponse & { [TRACE]?: RequestTrace };

/** Where controllers and services leave what the access line should carry. */
export function requestTrace(res: ServerResponse): RequestTrace {
  // Outside the access log (a bare app in a unit test): a trace nobody reads.
  return (res as Traced)[TRACE] ?? {};
}

/** The request's id (the client's `x-request-id` when it is sane, else a new UUID). */
export function requestIdOf(req: IncomingMessage): string {
  const id = (req as { id?: unknown }).id;
  return typeof id === 'string' ? id : '';
}

/** The request's own logger: every line carries its request id (`reqId`). */
export function requestLog(req: IncomingMessage, fallback: Logger): Logger {
  return (req as { log?: Logger }).log ?? fallback;
}

/**
 * The access log, through pino-http: a request id (echoed in `x-request-id`), a request-scoped logger
 * (`req.log`, its lines carry `reqId`), and one JSON line per request when its response closes: method,
 * path, status, response time in ms, and what the controllers and services put in the trace (model,
 * endpoint, attempts, time to first byte, error code). A response closed before its end is logged as
 * `client closed`. Configured for speed: plain serializers of three fields (no header copies, no
 * redaction pass: nothing secret is in them), no error objects (the error code says it), levels by
 * route and status, health checks at debug.
 */
export function accessLog(logger: Logger): RequestHandler {
  const options: Options<IncomingMessage, ServerResponse> = {
    logger,
    quietReqLogger: true,
    wrapSerializers: false,
    serializers: {
      req: (req: IncomingMessage & { id?: unknown; originalUrl?: string }) => ({
        id: req.id,
        method: req.method,
        url: loggedUrl(req.originalUrl ?? req.url ?? ''),
      }),
      res: (res: ServerResponse) => ({ statusCode: res.statusCode }),
    },
    genReqId: (req, res) => {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && CLIENT_REQUEST_ID.test(given) ? given : randomUUID();
      res.setHeader('x-request-id', id);
      (res as Traced)[TRACE] = {};
      return id;
    },
    customLogLevel: (req, res) => levelOf(req.url ?? '', res.statusCode, finish(res).errorCode),
    customSuccessMessage: message,
    customErrorMessage: (req, res) => message(req, res),
    customSuccessObject: (_req, res, fields: Record<string, unknown>) => withTrace(res, fields),
    customErrorObject: (_req, res, _err, fields: Record<string, unknown>) => {
      // The error code says what failed; a stack for every 5xx would only fill the log.
      delete fields.err;
      return withTrace(res, fields);
    },
  };
  return pinoHttp(options);
}

/** The trace, its `client_closed` set when the response closed before its end. */
function finish(res: Traced): RequestTrace {
  const trace = res[TRACE] ?? {};
  if (!res.writableEnded) trace.errorCode = 'client_closed';
  return trace;
}

function withTrace(res: ServerResponse, fields: Record<string, unknown>): Record<string, unknown> {
  const trace = (res as Traced)[TRACE];
  // The response object lives on in the old generation after it is done; what it points to would be
  // kept alive (and copied by every young collection) until the next full collection.
  (res as Traced)[TRACE] = undefined;
  return trace ? Object.assign(fields, trace) : fields;
}

function message(req: IncomingMessage & { originalUrl?: string }, res: ServerResponse): string {
  const url = loggedUrl(req.originalUrl ?? req.url ?? '');
  return `${req.method} ${url} ${res.writableEnded ? res.statusCode : 'client closed'}`;
}

const MAX_LOGGED_URL_CHARS = 512;
/** Query parameters whose values are never logged: whatever carries a credential. */
const SECRET_PARAM = /key|token|secret|auth|pass|sig|credential|session/i;

/**
 * The URL as it may be logged: values of credential-like query parameters (a key sent as `?api_key=`)
 * redacted, and no longer than MAX_LOGGED_URL_CHARS. A plain path (nearly every request) is as it came.
 */
function loggedUrl(url: string): string {
  const query = url.indexOf('?');
  if (query < 0 && url.length <= MAX_LOGGED_URL_CHARS) return url;
  let out = url;
  if (query >= 0) {
    const params = url
      .slice(query + 1)
      .split('&')
      .map((param) => {
        const eq = param.indexOf('=');
        const name = eq < 0 ? param : param.slice(0, eq);
        return eq >= 0 && SECRET_PARAM.test(decodeName(name)) ? `${name}=[redacted]` : param;
      });
    out = `${url.slice(0, query)}?${params.join('&')}`;
  }
  return out.length > MAX_LOGGED_URL_CHARS ? `${out.slice(0, MAX_LOGGED_URL_CHARS)}…` : out;
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}

type AccessLevel = 'debug' | 'info' | 'warn' | 'error';

function levelOf(url: string, status: number, errorCode: string | undefined): AccessLevel {
  if (url.startsWith('/health')) return 'debug';
  // A stream that failed after its 200 went out (heartbeats, or a break mid-answer) failed all the same.
  if (status >= 500 || (status < 400 && errorCode !== undefined && errorCode !== 'client_closed'))
    return 'error';
  if (status >= 400) return 'warn';
  return 'info';
}
