import { randomUUID } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { pinoHttp, type Options } from 'pino-http';
import { accessLoggerOf, RequestLog, type Logger } from '../../observability/logger.js';
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
export function requestLog(req: IncomingMessage, logger: Logger): RequestLog {
  return new RequestLog(logger, requestIdOf(req));
}

/**
 * The access log, through pino-http: a request id (echoed in `x-request-id`; services log with it
 * through `requestLog`), and one JSON line per request when its response closes: its `reqId`, method,
 * path, status, response time in ms, and what the controllers and services put in the trace (model,
 * endpoint, attempts, time to first byte, error code). A response closed before its end is logged as
 * `client closed`. Configured for speed: plain serializers of three fields (no header copies, no
 * redaction pass: nothing secret is in them), no error objects (the error code says it), levels by
 * route and status, health checks at debug.
 */
export function accessLog(logger: Logger): RequestHandler {
  const options: Options<IncomingMessage, ServerResponse> = {
    logger: childless(accessLoggerOf(logger)),
    // No request object is bound to a child logger (and there are no children, see childless): the
    // access line adds `reqId`, `req` and `res` itself (below).
    quietReqLogger: true,
    quietResLogger: true,
    wrapSerializers: false,
    serializers: { req: plainOnly, res: plainOnly },
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
    customSuccessObject: (req, res, fields: { responseTime: number }) => accessFields(req, res, fields),
    // The error code says what failed; a stack for every 5xx would only fill the log.
    customErrorObject: (req, res, _err, fields: { responseTime: number }) => accessFields(req, res, fields),
  };
  return pinoHttp(options);
}

/**
 * pino-http makes two child loggers per request (one bound to the request id, one to the request
 * object), for `req.log` and the access line. Nothing here uses `req.log` (services log through
 * `requestLog`), and the access line carries its `reqId` itself (`accessFields`), so the children
 * are the logger itself: pino's child() serialises its bindings each time, about 4% of the CPU of a
 * request in a profile under load.
 */
function childless(logger: Logger): Logger {
  const self = Object.create(logger) as Logger;
  Object.defineProperty(self, 'child', { value: () => self });
  return self;
}

/** The trace, its `client_closed` set when the response closed before its end. */
function finish(res: Traced): RequestTrace {
  const trace = res[TRACE] ?? {};
  if (!res.writableEnded) trace.errorCode = 'client_closed';
  return trace;
}

/**
 * pino-http binds the request and the response objects themselves to its loggers: those are never
 * logged whole (a child logger skips a binding serialised to undefined). The access line's own `req`
 * and `res` fields are plain objects and go as they are.
 */
function plainOnly(value: unknown): unknown {
  return value instanceof IncomingMessage || value instanceof ServerResponse ? undefined : value;
}

/** The access line's fields: the request, the response, the time, then the trace. */
function accessFields(
  req: IncomingMessage & { id?: unknown; originalUrl?: string },
  res: ServerResponse,
  fields: { responseTime: number },
): Record<string, unknown> {
  const trace = (res as Traced)[TRACE];
  // The response object lives on in the old generation after it is done; what it points to would be
  // kept alive (and copied by every young collection) until the next full collection.
  (res as Traced)[TRACE] = undefined;
  const line = {
    reqId: req.id,
    req: { id: req.id, method: req.method, url: loggedUrl(req.originalUrl ?? req.url ?? '') },
    res: { statusCode: res.statusCode },
    responseTime: fields.responseTime,
  };
  return trace ? Object.assign(line, trace) : line;
}

function message(req: IncomingMessage & { originalUrl?: string }, res: ServerResponse): string {
  const url = loggedUrl(req.originalUrl ?? req.url ?? '');
  return `${req.method} ${url} ${res.writableEnded ? res.statusCode : 'client closed'}`;
}

const MAX_LOGGED_URL_CHARS = 512;
const VIRTUAL_KEY_IN_URL = /sk-gw-[A-Za-z0-9_-]+/g;
/** Query parameters whose values are never logged: whatever carries a credential. */
const SECRET_PARAM = /key|token|secret|auth|pass|sig|credential|session|jwt|bearer/i;
/** A JWT anywhere in a URL (three base64url parts, the first a JSON header): never written down. */
const JWT_IN_URL = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;

/**
 * The URL as it may be logged: values of credential-like query parameters (a key sent as `?api_key=`)
 * redacted, and no longer than MAX_LOGGED_URL_CHARS. A plain path (nearly every request) is as it came.
 */
function loggedUrl(url: string): string {
  // A key pasted into a path (an admin who sent a secret instead of its id) is not written down.
  if (url.includes('sk-gw-')) url = url.replace(VIRTUAL_KEY_IN_URL, 'sk-gw-[redacted]');
  if (url.includes('eyJ')) url = url.replace(JWT_IN_URL, '[redacted-jwt]');
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
  // A stream the gateway's own shutdown cut is the operator's doing: worth a warning, not an error.
  if (errorCode === 'server_shutting_down') return 'warn';
  if (status >= 500 || (status < 400 && errorCode !== undefined && errorCode !== 'client_closed'))
    return 'error';
  if (status >= 400) return 'warn';
  return 'info';
}
