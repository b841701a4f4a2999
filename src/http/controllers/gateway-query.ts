import type { RequestHandler } from 'express';
import { z } from 'zod';
import { GatewayError, InvalidRequestError } from '../../errors/gateway-error.js';
import { requestIdOf } from '../middleware/access-log.js';

/** The provider types an endpoint may have (CONFIG.md, providers). */
const PROVIDERS = ['openai-compatible', 'openai', 'azure', 'anthropic', 'gemini'] as const;

const queryBody = z.strictObject({
  prompt: z.string({ error: "'prompt' is required: the text to ask" }).min(1, "'prompt' must not be empty"),
  model: z.string().min(1).max(256).optional(),
  provider: z.enum(PROVIDERS, { error: `'provider' must be one of ${PROVIDERS.join(', ')}` }).optional(),
  system: z.string().optional(),
  max_tokens: z.number().int().positive({ error: "'max_tokens' must be a whole number above 0" }).optional(),
});

export interface QueryDeps {
  /** This gateway's own address (the query is a chat completion asked of it). */
  selfUrl: () => string;
  /** `query.defaultModel`, else the first model listed. */
  defaultModel: () => string | undefined;
  /** The provider type of each endpoint serving a model (every endpoint is openai-compatible today). */
  endpointsOf: (model: string, provider: string) => string[];
}

/**
 * `POST /gateway/query` (the Unified LLM API Gateway's one-call route): `{prompt, model?, provider?,
 * system?, max_tokens?}` -> `{cached, response, model, usage}`. It is a chat completion asked of this
 * gateway over loopback, with the caller's key: routing, failover, limits, the cache and the ledger
 * apply exactly as to `/v1/chat/completions` (one ledger record, one set of metrics), and an error
 * comes back as that route answered it.
 */
export function gatewayQuery(deps: QueryDeps): RequestHandler {
  return async (req, res) => {
    const parsed = queryBody.safeParse(req.body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      if (issue.code === 'unrecognized_keys')
        throw new InvalidRequestError(
          `Unknown field '${issue.keys[0]}': the body takes prompt, model, provider, system, max_tokens.`,
          { param: issue.keys[0] },
        );
      const param = issue.path.map(String).join('.') || undefined;
      throw new InvalidRequestError(issue.message, { param });
    }
    const { prompt, system, provider, max_tokens } = parsed.data;
    const model = parsed.data.model ?? deps.defaultModel();
    if (model === undefined)
      throw new GatewayError('No model is listed yet: name one in the body, or set query.defaultModel.', {
        code: 'model_not_found',
        param: 'model',
      });
    const body: Record<string, unknown> = {
      model,
      messages: [...(system ? [{ role: 'system', content: system }] : []), { role: 'user', content: prompt }],
    };
    if (max_tokens !== undefined) body.max_tokens = max_tokens;
    // A provider is a preference: its first endpoint serving the model is tried first, if there is one.
    const preferred = provider === undefined ? undefined : deps.endpointsOf(model, provider)[0];
    if (preferred !== undefined) body['x-gateway'] = { endpoint: preferred };
    const answer = await fetch(`${deps.selfUrl()}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-request-id': requestIdOf(req),
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        ...(typeof req.headers['cache-control'] === 'string'
          ? { 'cache-control': req.headers['cache-control'] }
          : {}),
      },
      body: JSON.stringify(body),
    });
    const json = (await answer.json().catch(() => null)) as {
      model?: string;
      usage?: unknown;
      choices?: Array<{ message?: { content?: unknown } }>;
    } | null;
    res.setHeader('cache-control', 'no-store');
    for (const name of ['retry-after', 'x-gateway-endpoint', 'x-gateway-attempts'])
      if (answer.headers.has(name)) res.setHeader(name, answer.headers.get(name)!);
    if (!answer.ok || json === null) {
      res
        .status(answer.status)
        .json(json ?? { error: { message: 'The completion failed.', type: 'api_error' } });
      return;
    }
    const content = json.choices?.[0]?.message?.content;
    res.json({
      cached: answer.headers.get('x-cache') === 'HIT',
      response: typeof content === 'string' ? content : '',
      model: json.model ?? model,
      usage: json.usage ?? null,
    });
  };
}

/**
 * The seed's clients send the bare key (`Authorization: <key>`): read as `Bearer <key>` on this route.
 */
export const bareKeyAsBearer: RequestHandler = (req, _res, next) => {
  const value = req.headers.authorization?.trim();
  if (value && !/\s/.test(value) && !/^bearer$/i.test(value)) req.headers.authorization = `Bearer ${value}`;
  next();
};
