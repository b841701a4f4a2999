import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { accessLineWriter, type AccessLevel, type AccessLine } from '../../observability/access-line.js';
import type { Logger } from '../../observability/logger.js';
import type { RequestTrace } from '../../services/core/request.js';

const CLIENT_REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

/** What the access line of one request needs, kept on its response (a class: one fixed shape). */
class AccessRecord {
  readonly trace: RequestTrace = {};
  constructor(
    readonly id: string,
    readonly method: string,
    /** The path the client asked for (express rewrites req.url inside routers). */
    readonly url: string,
    readonly startedAt: number,
    readonly write: Writer,
  ) {}
}

interface Writer {
  now: () => number;
  line: (level: AccessLevel, line: AccessLine) => void;
}

/** Where a response keeps its access record (see request-shape.ts). */
export const ACCESS_RECORD = Symbol('gateway.access');
type Tracked = ServerResponse & { [ACCESS_RECORD]?: AccessRecord };

/** Where controllers leave what the access line should carry. */
export function requestTrace(res: ServerResponse): RequestTrace {
  const record = (res as Tracked)[ACCESS_RECORD];
  if (record) return record.trace;
  // Outside the access log (a bare app in a unit test): a trace nobody reads.
  return {};
}

/** The request's id (the client's `x-request-id` when it is sane, else a new UUID). */
export function requestIdOf(res: ServerResponse): string {
  return (res as Tracked)[ACCESS_RECORD]?.id ?? '';
}

/**
 * Request id (echoed in `x-request-id`) and one JSON access line per request, written when the response
 * closes: method, path, status, response time in ms, and what the controllers and services put in the trace
 * (model, endpoint, attempts, time to first byte, error code). A response closed before its end is
 * logged as `client closed`. The listeners are shared functions and the request's state one object, so
 * a request costs no closures here.
 */
export function accessLog(
  logger: Logger,
  now: () => number = performance.now.bind(performance),
): RequestHandler {
  const write: Writer = { now, line: accessLineWriter(logger) };
  return (req, res, next) => {
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && CLIENT_REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('x-request-id', id);
    (res as Tracked)[ACCESS_RECORD] = new AccessRecord(id, req.method, loggedUrl(req.url), now(), write);
    res.on('close', onClose);
    next();
  };
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

/** Controllers finish the summary before the response ends; the close comes after that. */
function onClose(this: Tracked): void {
  const record = this[ACCESS_RECORD]!;
  // The response object lives on in the old generation after it is done; what it points to would be
  // kept alive (and copied by every young collection) until the next full collection.
  this[ACCESS_RECORD] = undefined;
  const closedAt = record.write.now();
  const ended = this.writableEnded;
  const status = this.statusCode;
  if (!ended) record.trace.errorCode = 'client_closed';
  record.write.line(levelOf(record.url, status, record.trace.errorCode), {
    id: record.id,
    method: record.method,
    url: record.url,
    statusCode: status,
    responseTimeMs: Math.round((closedAt - record.startedAt) * 100) / 100,
    fields: record.trace,
    msg: `${record.method} ${record.url} ${ended ? status : 'client closed'}`,
  });
}

function levelOf(url: string, status: number, errorCode: string | undefined): AccessLevel {
  if (url.startsWith('/health')) return 'debug';
  // A stream that failed after its 200 went out (heartbeats, or a break mid-answer) failed all the same.
  if (status >= 500 || (status < 400 && errorCode !== undefined && errorCode !== 'client_closed'))
    return 'error';
  if (status >= 400) return 'warn';
  return 'info';
}
