import type { Request, RequestHandler } from 'express';
import { z } from 'zod';
import { clip, GatewayError, InvalidRequestError, ModelNotFoundError } from '../../errors/gateway-error.js';
import type { Admission, Limiter } from '../../services/limits/limiter.js';
import { rewrittenBody, withStreamUsage } from '../../services/core/request-body.js';
import { EXTENSION_FIELD, requestExtension, type RequestExtension } from '../request-extension.js';
import type { UsageRecorder } from '../usage-recorder.js';
import { usageOf } from '../usage-recorder.js';
import { principalOf } from '../principal.js';
import type { CompletionService } from '../../services/completion/completion-service.js';
import { forwardableHeaders } from '../../services/forwarder/forward-headers.js';
import type { Logger } from '../../observability/logger.js';
import { requestIdOf, requestLog, requestTrace } from '../middleware/access-log.js';
import { timeoutOverrides } from '../request-options.js';
import { cacheUseOf, type ResponseCache } from '../../services/cache/response-cache.js';
import type { ClientResponse } from '../../services/core/client-response.js';
import type { RequestTrace } from '../../services/core/request.js';
import { RateLimitError } from '../../services/limits/refusal.js';
import type { GatewayMetrics } from '../../observability/metrics.js';
import type { Tracing } from '../../observability/tracing.js';
import { captureForCache, sendHit, X_CACHE } from '../response-caching.js';
import { estimatePromptTokens } from '../../services/usage/token-estimate.js';

/** Longer model ids are no model of any server; they would only fill logs and error messages. */
const MAX_MODEL_CHARS = 256;

/**
 * Only the fields the gateway reads are validated (picked from the body, so that the rest is not walked
 * on every request); every other field (tools, response_format, stream_options, vendor extensions…)
 * passes through untouched because the original bytes are forwarded.
 */
const chatRequestSchema = z.object({
  model: z
    .string({ error: "'model' is required and must be a string" })
    .min(1, "'model' must not be empty")
    .max(MAX_MODEL_CHARS, `'model' must be at most ${MAX_MODEL_CHARS} characters`),
  messages: z
    .array(z.unknown(), { error: "'messages' is required and must be an array of messages" })
    .min(1, "'messages' must contain at least one message"),
  stream: z.boolean({ error: "'stream' must be true or false" }).nullish(),
});

const modelField = chatRequestSchema.shape.model;
const streamField = chatRequestSchema.shape.stream;

/**
 * `input` of an embeddings request, `prompt` of a text completion: a string, strings, or token ids (one
 * list or several), never empty and never a mix (what vLLM, SGLang and OpenAI take); each refusal says
 * which.
 */
function textOrTokens(field: 'input' | 'prompt') {
  return z.unknown().superRefine((v, ctx) => {
    const fail = (message: string) => ctx.addIssue({ code: 'custom', message });
    const tokenIds = (list: unknown[]) => list.every((n) => Number.isInteger(n) && (n as number) >= 0);
    if (v === undefined) return fail(`'${field}' is required: a string, a list of strings, or token ids`);
    if (typeof v === 'string') return;
    if (!Array.isArray(v)) return fail(`'${field}' must be a string, a list of strings, or token ids`);
    if (v.length === 0) return fail(`'${field}' must not be an empty list`);
    if (v.every((s) => typeof s === 'string') || tokenIds(v)) return;
    if (v.every((l) => Array.isArray(l) && l.length > 0 && tokenIds(l))) return;
    fail(
      `'${field}' must be a string, a list of strings, a list of token ids (whole numbers ≥ 0) or a list of such lists, not a mix`,
    );
  });
}

const embeddingsRequestSchema = z.object({
  model: modelField,
  input: textOrTokens('input'),
  stream: z
    .literal(false, { error: "Embeddings are never streamed: leave out 'stream' or set it to false." })
    .nullish(),
});

const completionsRequestSchema = z.object({
  model: modelField,
  prompt: textOrTokens('prompt'),
  stream: streamField,
});

/**
 * The OpenAI routes served by this controller: the upstream path, and what the body must have. Every
 * one is routed, retried, failed over, limited, cached and accounted the same way; only chat streams
 * are continued after a break (a continuation is a chat request).
 */
export interface CompletionRoute {
  path: string;
  /** The GenAI operation name (traces). */
  operation: 'chat' | 'embeddings' | 'text_completion';
  schema: z.ZodType<{ model: string; stream?: boolean | null | undefined }>;
  /** What a body that is no JSON object must have, for the 400. */
  needs: string;
}

export const CHAT_ROUTE: CompletionRoute = {
  path: '/v1/chat/completions',
  operation: 'chat',
  schema: chatRequestSchema,
  needs: '"model" and "messages"',
};
export const EMBEDDINGS_ROUTE: CompletionRoute = {
  path: '/v1/embeddings',
  operation: 'embeddings',
  schema: embeddingsRequestSchema,
  needs: '"model" and "input"',
};
export const COMPLETIONS_ROUTE: CompletionRoute = {
  path: '/v1/completions',
  operation: 'text_completion',
  schema: completionsRequestSchema,
  needs: '"model" and "prompt"',
};

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

export interface ChatDeps {
  service: CompletionService;
  /** Client headers forwarded upstream besides the default ones. */
  forwardHeaders: () => readonly string[];
  logger: Logger;
  limiter?: Limiter | undefined;
  usage?: UsageRecorder | undefined;
  /** Whether `x-gateway.endpoint` names an endpoint. */
  endpointExists?: (name: string) => boolean;
  cache?: ResponseCache | undefined;
  metrics?: GatewayMetrics | undefined;
  /** Whether a model is one the gateway knows (a metrics label), else it is counted as `unknown`. */
  knownModel?: (model: string) => boolean;
  /** Tracing, when an OTLP endpoint is configured. */
  tracing?: Tracing | undefined;
  /** The route served (chat completions unless told). */
  route?: CompletionRoute;
}

export function chatCompletions(deps: ChatDeps): RequestHandler {
  const { service, forwardHeaders, logger, limiter, usage, metrics, tracing } = deps;
  const endpointExists = deps.endpointExists ?? (() => false);
  const knownModel = deps.knownModel ?? (() => false);
  const route = deps.route ?? CHAT_ROUTE;
  const isChat = route === CHAT_ROUTE;
  // The response cache keeps and replays chat answers (in either mode) only.
  const cache = isChat ? deps.cache : undefined;
  return async (req, res) => {
    const raw = rawBody(req);
    // The request object outlives the request in the old generation; the body goes with the request.
    req.body = undefined;
    const json = parseJson(raw);
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new InvalidRequestError(`Request body must be a JSON object with at least ${route.needs}.`, {
        code: 'invalid_request',
      });
    }
    const body = json as Record<string, unknown>;
    const parsed = isChat
      ? chatRequestSchema.safeParse({ model: body.model, messages: body.messages, stream: body.stream })
      : route.schema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InvalidRequestError(issue?.message ?? 'Invalid request body.', {
        param: issue?.path.map(String).join('.') || undefined,
        code: 'invalid_request',
      });
    }
    let timeouts = timeoutOverrides(req.headers);
    const { model, stream } = parsed.data;
    // The request extension: checked, applied, and never sent upstream (the body is written again only
    // when it is there, so other requests keep their bytes as they came).
    let extension: RequestExtension | undefined;
    let sent: { body: Buffer; json: Readonly<Record<string, unknown>> } = { body: raw, json: body };
    if (Object.hasOwn(body, EXTENSION_FIELD)) {
      extension = requestExtension(body[EXTENSION_FIELD], endpointExists);
      const { [EXTENSION_FIELD]: _removed, ...rest } = body;
      sent = { body: rewrittenBody(rest, {}), json: rest };
      if (extension.timeout !== undefined) {
        const totalMs = Math.max(1, Math.round(extension.timeout * 1_000));
        timeouts = { ...timeouts, totalMs: Math.min(timeouts.totalMs ?? totalMs, totalMs) };
      }
    }
    // The access line reads this object when the response closes, so the service fills it as it goes.
    const trace = requestTrace(res);
    trace.model = model;
    trace.stream = stream === true;
    if (extension?.metadata) trace.metadata = JSON.stringify(extension.metadata);

    const principal = principalOf(res);
    let admission: Admission | undefined = undefined;
    let hideUsage = false;
    // One ledger record, slots back, tokens corrected and spending added, the metrics counted, when the
    // answer ends, however it ends (refusals included).
    const startedPerf = performance.now();
    const span = tracing?.startRequest(model, req.headers, route.operation);
    res.once('close', () => {
      const used = usageOf(trace, body);
      // Reported usage, else an estimate; nothing when no answer came (the reservation goes back).
      admission?.finish(used);
      const cost =
        usage?.record({
          req,
          res,
          trace,
          principal,
          json: body,
          used,
          startedAt,
          metadata: extension?.metadata,
        }) ?? 0;
      span?.end({
        status: res.statusCode,
        errorCode: trace.errorCode,
        responseModel: trace.servedModel,
        inputTokens: used.promptTokens,
        outputTokens: used.completionTokens,
        requestId: requestIdOf(req),
      });
      if (!metrics) return;
      const durationMs = performance.now() - startedPerf;
      metrics.request({
        model: knownModel(model) ? model : 'unknown',
        status: res.statusCode,
        durationS: durationMs / 1_000,
        ttftS: trace.stream && trace.ttfbMs !== undefined ? trace.ttfbMs / 1_000 : undefined,
        endpoint: trace.endpoint ?? (trace.cache === 'HIT' ? 'cache' : 'none'),
        overheadS: Math.max(0, durationMs - (trace.upstreamMs ?? 0)) / 1_000,
        promptTokens: used.promptTokens,
        completionTokens: used.completionTokens,
        cost,
        attempts: trace.attempts ?? 0,
        continued: trace.continuedOn !== undefined,
        hedged: trace.hedged === true,
        cache: trace.cache,
      });
      if (trace.limitScope !== undefined) metrics.limited(trace.limitScope);
    });
    const startedAt = usage?.now() ?? 0;

    if (principal.models !== undefined && !principal.models.has(model))
      throw new GatewayError(
        principal.models.size === 0
          ? `This ${principal.kind === 'jwt' ? 'token' : 'key'} may use no model (its models and its team's leave none): ask for them to be widened.`
          : `This ${principal.kind === 'jwt' ? 'token' : 'key'} may not use the model '${clip(model)}'. It may use: ${[
              ...principal.models,
            ]
              .slice(0, 20)
              .map((m) => `'${clip(m, 100)}'`)
              .join(', ')}${principal.models.size > 20 ? ', …' : ''}.`,
        { code: 'model_not_allowed', param: 'model' },
      );
    if (principal.kind === 'virtual') trace.keyId = principal.keyId;

    // The response cache: a hit is answered here (one request against the limits, no tokens); a miss
    // goes upstream with its answer copied for the cache.
    let out: ClientResponse = res;
    if (cache) {
      const use = cacheUseOf(req.headers['cache-control'], extension?.cache);
      if (use === 'bypass') {
        res.setHeader(X_CACHE, 'BYPASS');
        trace.cache = 'BYPASS';
      } else {
        const key = cache.keyOf(body, principal);
        const hit = use === 'use' ? await cache.lookup(key) : undefined;
        if (hit) {
          const admitting = limiter?.admit({ principal, model, json: body, reserveTokens: 0 });
          if (admitting !== undefined)
            try {
              admission = await admitting;
            } catch (err) {
              throw refused(trace, err);
            }
          if (admission) for (const name in admission.headers) res.setHeader(name, admission.headers[name]!);
          trace.cache = 'HIT';
          trace.ttfbMs = usage ? Math.max(0, Math.round(usage.now() - startedAt)) : 0;
          sendHit(res, hit, body, stream === true);
          return;
        }
        trace.cache = use === 'use' ? 'MISS' : 'BYPASS';
        res.setHeader(X_CACHE, trace.cache);
        out = captureForCache(cache, key, res, trace);
      }
    }

    // Embeddings generate nothing: only their input is reserved against tpm.
    const admitting = limiter?.admit({
      principal,
      model,
      json: body,
      reserveTokens: route === EMBEDDINGS_ROUTE ? estimatePromptTokens(body) : undefined,
    });
    if (admitting !== undefined)
      try {
        admission = await admitting;
      } catch (err) {
        throw refused(trace, err);
      }
    if (admission) for (const name in admission.headers) res.setHeader(name, admission.headers[name]!);

    // The ledger counts the tokens of every stream: asked upstream when the client did not ask.
    let forwarded = sent;
    if (stream === true && usage) {
      const asked = withStreamUsage(sent.body, sent.json);
      if (asked) {
        forwarded = asked;
        hideUsage = true;
      }
    }

    // A write racing a disconnect must never become an uncaught 'error' event.
    res.on('error', ignore);
    const completing = service.complete(
      {
        model,
        path: route.path,
        stream: stream === true,
        body: forwarded.body,
        json: forwarded.json,
        hideUsage,
        preferEndpoint: extension?.endpoint,
        span,
        headers: forwardableHeaders(req.headers, requestIdOf(req), forwardHeaders()),
        log: requestLog(req, logger),
        clientHeaders: req.headers,
        timeouts,
      },
      out,
      trace,
    );
    if (principal.models === undefined) return completing;
    // A key limited to some models is told only of those.
    await completing.catch((err: unknown) => {
      if (err instanceof ModelNotFoundError)
        throw new ModelNotFoundError(model, { all: true, ids: [...principal.models!] });
      throw err;
    });
  };
}

/** The body bytes, without a UTF-8 byte order mark (JSON.parse and many upstreams reject one). */
function rawBody(req: Request): Buffer {
  const body: unknown = req.body;
  if (!Buffer.isBuffer(body)) return Buffer.alloc(0);
  return body.subarray(0, 3).equals(UTF8_BOM) ? body.subarray(3) : body;
}

function ignore(): void {}

/** Notes the scope of the limit that refused a request (for the metrics); the error, to throw on. */
function refused(trace: RequestTrace, err: unknown): unknown {
  if (err instanceof RateLimitError) trace.limitScope = err.scope;
  return err;
}

function parseJson(raw: Buffer): unknown {
  if (raw.length === 0) {
    throw new InvalidRequestError(
      'Request body is empty: send a JSON object with at least "model" and "messages".',
      {
        code: 'invalid_json',
      },
    );
  }
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch (err) {
    // V8's message quotes part of the body; only the position is worth repeating.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new InvalidRequestError(
      `Request body is not valid JSON${at === undefined ? '' : ` (syntax error at character ${at})`}.`,
      {
        code: 'invalid_json',
      },
    );
  }
}
