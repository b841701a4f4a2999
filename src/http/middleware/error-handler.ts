import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import {
  clip,
  GatewayError,
  InternalError,
  InvalidRequestError,
  NotFoundError,
  toOpenAIErrorBody,
} from '../../errors/gateway-error.js';
import type { Logger } from '../../observability/logger.js';
import { ClientClosedReason, ShuttingDownReason } from '../../services/core/abort-reasons.js';
import { sseError } from '../../services/core/sse.js';
import { requestTrace } from './access-log.js';

/** Routes of OpenAI's API that clients call without `/v1` when their base URL lacks it. */
const WITHOUT_V1 = /^\/(chat\/completions|completions|models|embeddings|responses)(\/|$)/;

export function notFound(): RequestHandler {
  return (req, _res, next) => {
    const path = clip(req.path);
    const hint = WITHOUT_V1.test(req.path)
      ? ` Did you mean /v1${path}? Add /v1 to the base URL of your client (http://host:port/v1).`
      : req.path.startsWith('/v1/v1/')
        ? ' The path has /v1 twice: take /v1 off the base URL of your client (Anthropic SDKs add it themselves).'
        : ' See GET /v1/models and POST /v1/chat/completions.';
    next(new NotFoundError(`Unknown route: ${req.method} ${path}.${hint}`, { code: 'route_not_found' }));
  };
}

/** How a route's errors look on the wire (OpenAI's unless the route speaks another API). */
export interface ErrorShape {
  /** The JSON body of an error answered before any header. */
  body: (error: GatewayError, req: Request) => object;
  /** The event that ends a stream already started. */
  event: (error: GatewayError) => string;
}

const OPENAI_SHAPE: ErrorShape = { body: (error) => toOpenAIErrorBody(error), event: sseError };

/**
 * The only place that turns errors into HTTP: OpenAI error JSON while no header has been sent, an SSE
 * error event (`data: {"error":{...}}`, no [DONE]) once a stream has started. Never a stack trace.
 * A route speaking another API (Anthropic's `/v1/messages`) mounts one with its own shape.
 */
export function errorHandler(logger: Logger, shape: ErrorShape = OPENAI_SHAPE): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    // Ended by a shutdown: said as such, also when the connection is already gone.
    const shutdown = err instanceof ShuttingDownReason;
    if (!shutdown && (err instanceof ClientClosedReason || res.destroyed)) {
      requestTrace(res).errorCode = 'client_closed';
      return;
    }
    const error = shutdown ? shuttingDown() : toGatewayError(err);
    requestTrace(res).errorCode = error.code;
    if (res.destroyed) return;
    if (error instanceof InternalError) logger.error({ err }, 'unhandled error');

    if (res.headersSent) {
      if (!res.writableEnded) res.end(shape.event(error));
      return;
    }
    if (error.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(error.retryAfterSeconds));
    if (error.headers) for (const name in error.headers) res.setHeader(name, error.headers[name]!);
    res.status(error.status).json(shape.body(error, req));
  };
}

export function shuttingDown(): GatewayError {
  return new GatewayError('The gateway is shutting down; the answer is incomplete. Please retry.', {
    code: 'server_shutting_down',
    retryable: true,
  });
}

/** An http-errors style error (the router's, for a malformed path parameter). */
interface HttpErrorLike {
  status?: number;
  statusCode?: number;
  expose?: boolean;
  message?: string;
}

/** Our errors as they are; an http-errors style 4xx as a request error; anything else is internal. */
function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = (err ?? {}) as HttpErrorLike;
  const status = e.status ?? e.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500 && e.expose !== false) {
    return new InvalidRequestError(e.message ?? 'Bad request.', { status });
  }
  return new InternalError(err);
}
