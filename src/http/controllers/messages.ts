import type { Request, RequestHandler } from 'express';
import { ERROR_CODES, type ErrorCode } from '../../errors/codes.js';
import { AuthenticationError, GatewayError, InvalidRequestError } from '../../errors/gateway-error.js';
import { drained } from '../../services/core/client-response.js';
import { setEventStreamHeaders } from '../../services/core/sse.js';
import { anthropicError, chatRequestOf, countTokens, messageOf, MessagesStream } from '../messages-api.js';
import { SseParser } from '../../services/streaming/sse-parser.js';
import { estimatePromptTokens } from '../../services/usage/token-estimate.js';
import { askSelf, passedOnHeader } from '../loopback.js';
import { requestIdOf, requestTrace } from '../middleware/access-log.js';
import type { ErrorShape } from '../middleware/error-handler.js';
import { principalOf } from '../principal.js';

/**
 * `POST /v1/messages`: Anthropic's Messages API in front of every endpoint, so that Anthropic SDK
 * clients (Claude Code among them) use the open models behind the gateway. The request is translated to
 * a chat completion and asked of this gateway over loopback (routing, failover, limits, the cache, the
 * ledger and the metrics apply as to `/v1/chat/completions`); its answer, or each of its stream chunks
 * as it comes, is translated back. Errors are in Anthropic's shape.
 */
export function messagesRoute(deps: { selfUrl: () => string }): RequestHandler {
  return async (req, res) => {
    const request = chatRequestOf(jsonOf(req));
    const trace = requestTrace(res);
    trace.model = request.model;
    trace.stream = request.stream;
    const inputEstimate = estimatePromptTokens(request.chat);
    const asked = await askSelf(deps.selfUrl(), req, res, request.chat);
    if (!asked) return;
    const { answer, release } = asked;
    const requestId = requestIdOf(req);
    res.setHeader('request-id', requestId);
    for (const [name, value] of Object.entries(answer.headers))
      if (value !== undefined && passedOnHeader(name)) res.setHeader(name, value);

    if (answer.statusCode !== 200 || !request.stream) {
      const json = (await answer.body.json().catch(() => null)) as Record<string, unknown> | null;
      release();
      if (res.destroyed) return;
      if (answer.statusCode !== 200) {
        const code = errorCodeOf(json);
        trace.errorCode = code ?? `status_${answer.statusCode}`;
        const message = errorMessageOf(json) ?? `The completion failed with status ${answer.statusCode}.`;
        res.status(answer.statusCode).json(anthropicError(answer.statusCode, message, requestId, code));
        return;
      }
      res.json(messageOf(json, request.model, request.thinking, inputEstimate));
      return;
    }

    const stream = new MessagesStream(request.model, request.thinking, inputEstimate);
    const parser = new SseParser();
    let heartbeats = 0;
    setEventStreamHeaders(res);
    res.status(200);
    try {
      for await (const chunk of answer.body as AsyncIterable<Buffer>) {
        let out = '';
        for (const data of parser.feed(chunk)) out += translated(stream, data);
        // The chat route's heartbeats (no token yet) as Anthropic's pings: the stream is alive.
        if (parser.comments > heartbeats) {
          heartbeats = parser.comments;
          out += stream.ping();
        }
        if (out !== '' && !res.write(out)) await drained(res);
        if (res.destroyed) return;
      }
    } catch {
      // The inner request broke: the client left (nothing more to write), or the loopback failed.
      if (res.destroyed) return;
    } finally {
      release();
    }
    if (!stream.ended)
      res.write(
        stream.error(
          502,
          'The stream ended before the answer was complete. Please retry.',
          'upstream_stream_truncated',
        ),
      );
    res.end();
  };
}

/** One event of the chat route's stream as Anthropic's events. */
function translated(stream: MessagesStream, data: string): string {
  if (data === '[DONE]') return stream.done();
  let payload: unknown;
  try {
    payload = JSON.parse(data);
  } catch {
    return '';
  }
  const error = (payload as { error?: unknown } | null)?.error;
  if (error && typeof error === 'object') {
    const { message, code } = error as { message?: unknown; code?: unknown };
    const status =
      typeof code === 'string' && Object.hasOwn(ERROR_CODES, code)
        ? ERROR_CODES[code as ErrorCode].status
        : 500;
    return stream.error(
      status,
      typeof message === 'string' ? message : 'The stream broke.',
      typeof code === 'string' ? code : undefined,
    );
  }
  return stream.chunk(payload);
}

/**
 * `POST /v1/messages/count_tokens`: the gateway's estimate of the prompt's tokens (about four
 * characters a token; the models behind it each have their own tokenizer). The model must be one the
 * caller may use.
 */
export function countTokensRoute(deps: { knownModel: (model: string) => boolean }): RequestHandler {
  return (req, res) => {
    const { model, input_tokens } = countTokens(jsonOf(req));
    if (!deps.knownModel(model))
      throw new GatewayError(`The model '${model.slice(0, 256)}' does not exist.`, {
        code: 'model_not_found',
        param: 'model',
      });
    // As /v1/messages answers it: a model the key may not use is a 403.
    const allowed = principalOf(res).models;
    if (allowed !== undefined && !allowed.has(model))
      throw new GatewayError(`This key may not use the model '${model.slice(0, 256)}'.`, {
        code: 'model_not_allowed',
        param: 'model',
      });
    res.json({ input_tokens });
  };
}

/**
 * Anthropic SDK clients send their key as `x-api-key`: read as `Authorization: Bearer` on these routes.
 * With no key at all (and auth on), the 401 names both headers these routes take.
 */
export function apiKeyAsBearer(authDisabled: () => boolean): RequestHandler {
  return (req, res, next) => {
    const key = req.headers['x-api-key'];
    if (req.headers.authorization === undefined && typeof key === 'string' && /\s/.test(key.trim())) {
      requestTrace(res).authFailure = 'malformed';
      next(
        new AuthenticationError(
          "Malformed x-api-key header: expected one key, 'x-api-key: <your key>'.",
          'invalid_authorization_header',
        ),
      );
      return;
    }
    if (req.headers.authorization === undefined && typeof key === 'string' && key.trim() !== '')
      req.headers.authorization = `Bearer ${key.trim()}`;
    else if (req.headers.authorization === undefined && !authDisabled()) {
      requestTrace(res).authFailure = 'missing';
      next(
        new AuthenticationError(
          "Missing API key: send it in the header 'x-api-key: <your key>' (or 'Authorization: Bearer <your key>').",
          'missing_api_key',
        ),
      );
      return;
    }
    next();
  };
}

/** Errors of the Messages routes, in Anthropic's shape: JSON before the stream, an error event in it. */
export const ANTHROPIC_ERRORS: ErrorShape = {
  body: (error: GatewayError, req: Request) =>
    anthropicError(error.status, error.message, requestIdOf(req), error.code),
  event: (error: GatewayError) =>
    `event: error\ndata: ${JSON.stringify(anthropicError(error.status, error.message, undefined, error.code))}\n\n`,
};

function jsonOf(req: Request): unknown {
  const body = req.body as unknown;
  if (!Buffer.isBuffer(body) || body.length === 0)
    throw new InvalidRequestError('The body must be a JSON object (a Messages API request).', {
      code: 'invalid_json',
    });
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new InvalidRequestError('The body is not valid JSON.', { code: 'invalid_json' });
  }
}

function errorCodeOf(json: Record<string, unknown> | null): string | undefined {
  const error = json?.error as { code?: unknown } | undefined;
  return typeof error?.code === 'string' ? error.code : undefined;
}

function errorMessageOf(json: Record<string, unknown> | null): string | undefined {
  const error = json?.error as { message?: unknown } | undefined;
  return typeof error?.message === 'string' ? error.message : undefined;
}
