import type { RequestHandler } from 'express';
import { z } from 'zod';
import { GatewayError, InvalidRequestError } from '../../errors/gateway-error.js';
import { PROVIDER_NAMES, type ProviderName } from '../../config/providers.js';
import { askSelf, passedOnHeader } from '../loopback.js';
import { principalOf } from '../principal.js';

const queryBody = z.strictObject({
  prompt: z.string({ error: "'prompt' is required: the text to ask" }).min(1, "'prompt' must not be empty"),
  model: z
    .string({ error: "'model' must be a model id" })
    .min(1, "'model' must not be empty")
    .max(256, "'model' must be at most 256 characters")
    .optional(),
  // A preference for endpoints of that provider: the best of them serving the model is tried first.
  provider: z
    .enum(PROVIDER_NAMES, { error: `'provider' must be one of ${PROVIDER_NAMES.join(', ')}` })
    .optional(),
  system: z.string({ error: "'system' must be text" }).optional(),
  max_tokens: z
    .number({ error: "'max_tokens' must be a whole number above 0" })
    .int("'max_tokens' must be a whole number above 0")
    .positive("'max_tokens' must be a whole number above 0")
    .optional(),
});

export interface QueryDeps {
  /** This gateway's own address (the query is a chat completion asked of it). */
  selfUrl: () => string;
  /** `query.defaultModel`, else the first model listed that the caller may use. */
  defaultModel: (allowed: ReadonlySet<string> | undefined) => string | undefined;
  /** The endpoint of `provider` to try first for `model` (its own or an alias's), if one serves it. */
  preferredEndpoint: (model: string, provider: ProviderName) => string | undefined;
}

/**
 * `POST /gateway/query` (the Unified LLM API Gateway's one-call route): `{prompt, model?, provider?,
 * system?, max_tokens?}` -> `{cached, response, model, usage, finish_reason}`. It is a chat completion asked of this
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
    const { prompt, system, max_tokens } = parsed.data;
    const model = parsed.data.model ?? deps.defaultModel(principalOf(res).models);
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
    const preferred = parsed.data.provider && deps.preferredEndpoint(model, parsed.data.provider);
    // The chat route's own preference field: that endpoint first, then the usual order.
    if (preferred) body['x-gateway'] = { endpoint: preferred };
    const asked = await askSelf(deps.selfUrl(), req, res, body);
    if (!asked) return;
    const { answer } = asked;
    const json = (await answer.body.json().catch(() => null)) as {
      model?: string;
      usage?: unknown;
      choices?: Array<{ message?: { content?: unknown }; finish_reason?: unknown }>;
    } | null;
    asked.release();
    if (res.destroyed) return;
    res.setHeader('cache-control', 'no-store');
    // What the chat route told the caller about its limits, its endpoint and the cache, passed on.
    for (const [name, value] of Object.entries(answer.headers))
      if (value !== undefined && passedOnHeader(name)) res.setHeader(name, value);
    if (answer.statusCode !== 200 || json === null) {
      res
        .status(answer.statusCode)
        .json(json ?? { error: { message: 'The completion failed.', type: 'api_error' } });
      return;
    }
    const choice = json.choices?.[0];
    const content = choice?.message?.content;
    res.json({
      cached: answer.headers['x-cache'] === 'HIT',
      response: typeof content === 'string' ? content : '',
      model: json.model ?? model,
      usage: json.usage ?? null,
      finish_reason: choice?.finish_reason ?? null,
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
