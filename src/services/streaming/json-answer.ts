import type { ClientResponse } from '../core/client-response.js';
import type { AttemptFailure } from '../core/outcomes.js';
import { inBandError } from './sse-framing.js';
import { SSE_DONE, sseData } from '../core/sse.js';

/**
 * Whether a complete (non-streamed) answer is one: a JSON object that is not an error object. An HTML
 * page from a proxy in front of the model server, a cut or garbled body, or an error object with
 * status 200 is not, and another endpoint may still give one. Parsed once; relayed as it came.
 */
export function checkJsonAnswer(
  answer: Buffer,
  status: number,
  contentType: string | string[] | undefined,
): { parsed: object } | { failure: AttemptFailure } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    const type = String(contentType ?? 'application/json');
    return {
      failure: {
        kind: 'bad-response',
        message: `upstream answered ${status} with a body that is not a JSON object (${type})`,
      },
    };
  }
  const error = (parsed as { choices?: unknown }).choices === undefined ? inBandError(parsed) : undefined;
  if (error !== undefined)
    return {
      failure: { kind: 'error-event', message: `upstream answered ${status} with an error: ${error}` },
    };
  return { parsed };
}

/**
 * Sends a complete (non-streamed) answer as it came; the caller has claimed the commit and set the
 * gateway's headers. Node sets its content-length. If heartbeats already opened an event stream, the
 * completion (`parsed`) is sent as one chunk event instead, so that stream readers see its content.
 */
export function sendJsonAnswer(res: ClientResponse, status: number, body: Buffer, parsed: unknown): void {
  if (res.headersSent) {
    res.end(sseData(asChunk(parsed)) + SSE_DONE);
    return;
  }
  res.setHeader('content-type', 'application/json');
  res.statusCode = status;
  res.end(body);
}

interface Completion {
  object?: unknown;
  choices?: Array<{ index?: number; message?: Record<string, unknown>; finish_reason?: unknown }>;
}

/** chat.completion -> chat.completion.chunk: each choice's message becomes its delta. */
function asChunk(json: unknown): unknown {
  const c = json as Completion | null;
  if (!c || c.object !== 'chat.completion' || !Array.isArray(c.choices)) return json;
  return {
    ...c,
    object: 'chat.completion.chunk',
    choices: c.choices.map((choice, i) => {
      const message = choice.message ?? {};
      const toolCalls = Array.isArray(message.tool_calls)
        ? (message.tool_calls as Array<Record<string, unknown>>).map((call, index) => ({ index, ...call }))
        : undefined;
      return {
        index: choice.index ?? i,
        delta: { ...message, ...(toolCalls ? { tool_calls: toolCalls } : {}) },
        finish_reason: choice.finish_reason ?? null,
      };
    }),
  };
}
