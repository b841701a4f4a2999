import type { ErrorRequestHandler, RequestHandler } from 'express';
import {
  clip,
  GatewayError,
  InternalError,
  InvalidRequestError,
  NotFoundError,
  toOpenAIErrorBody,
} from '../../errors/gateway-error.js';
import type { Logger } from '../../observability/logger.js';
import { ClientClosedReason } from '../../services/core/abort-reasons.js';
import { sseError } from '../../services/core/sse.js';
import { requestTrace } from './access-log.js';

export function notFound(): RequestHandler {
  return (req, _res, next) => {
    next(
      new NotFoundError(
        `Unknown route: ${req.method} ${clip(req.path)}. See GET /v1/models and POST /v1/chat/completions.`,
        {
          code: 'route_not_found',
        },
      ),
    );
  };
}

/**
 * The only place that turns errors into HTTP: OpenAI error JSON while no header has been sent, an SSE
 * error event (`data: {"error":{...}}`, no [DONE]) once a stream has started. Never a stack trace.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, _req, res, _next) => {
    if (err instanceof ClientClosedReason || res.destroyed) {
      requestTrace(res).errorCode = 'client_closed';
      return;
    }
    const error = toGatewayError(err);
    requestTrace(res).errorCode = error.code;
    if (error instanceof InternalError) logger.error({ err }, 'unhandled error');

    if (res.headersSent) {
      if (!res.writableEnded) res.end(sseError(error));
      return;
    }
    if (error.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(error.retryAfterSeconds));
    res.status(error.status).json(toOpenAIErrorBody(error));
  };
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
