import type { Request, RequestHandler } from 'express';
import { z } from 'zod';
import { InvalidRequestError } from '../../errors/gateway-error.js';
import type { CompletionService } from '../../services/completion-service.js';
import { ClientClosedReason } from '../../services/abort-reasons.js';
import { forwardableHeaders } from '../../services/forward-headers.js';
import { requestSummary } from '../middleware/access-log.js';

/**
 * Only the fields the gateway reads are validated; every other field (tools, response_format,
 * stream_options, vendor extensions…) passes through untouched because the original bytes are forwarded.
 */
const chatRequestSchema = z.looseObject({
  model: z.string({ error: "'model' is required and must be a string" }).min(1, "'model' must not be empty"),
  messages: z
    .array(z.unknown(), { error: "'messages' is required and must be an array of messages" })
    .min(1, "'messages' must contain at least one message"),
  stream: z.boolean({ error: "'stream' must be true or false" }).nullish(),
});

export function chatCompletions(service: CompletionService): RequestHandler {
  return async (req, res) => {
    const raw = rawBody(req);
    const parsed = chatRequestSchema.safeParse(parseJson(raw));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InvalidRequestError(issue?.message ?? 'Invalid request body.', {
        param: issue?.path.map(String).join('.') || undefined,
        code: 'invalid_request',
      });
    }
    const { model, stream } = parsed.data;
    const summary = requestSummary(res);
    summary.model = model;
    summary.stream = stream === true;

    const controller = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) controller.abort(new ClientClosedReason());
    });
    const trace = { attempts: 0 } as Parameters<CompletionService['complete']>[2];
    try {
      await service.complete(
        {
          model,
          stream: stream === true,
          body: raw,
          headers: { ...forwardableHeaders(req.headers), 'x-request-id': requestId(req) },
          signal: controller.signal,
        },
        res,
        trace,
      );
    } finally {
      summary.endpoint = trace.endpoint;
      summary.attempts = trace.attempts;
      summary.ttfbMs = trace.ttfbMs;
      summary.upstreamStatus = trace.upstreamStatus;
    }
  };
}

function requestId(req: Request): string {
  return typeof req.id === 'string' || typeof req.id === 'number' ? String(req.id) : '';
}

function rawBody(req: Request): Buffer {
  const body: unknown = req.body;
  if (Buffer.isBuffer(body)) return body;
  return Buffer.alloc(0);
}

function parseJson(raw: Buffer): unknown {
  if (raw.length === 0) {
    throw new InvalidRequestError(
      'Request body is empty: send a JSON object with at least "model" and "messages".',
      { code: 'invalid_json' },
    );
  }
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch (err) {
    throw new InvalidRequestError(`Request body is not valid JSON: ${(err as Error).message}`, {
      code: 'invalid_json',
    });
  }
}
