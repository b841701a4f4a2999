import type { ProviderName } from '../../config/providers.js';
import type { EndpointConfig } from '../../config/types.js';
import { anthropic } from './anthropic.js';
import { gemini } from './gemini.js';
import { azure, deepinfra, openaiCompatible } from './openai-family.js';
import type { AnswerTranslation, Provider } from './provider.js';

const PROVIDERS: Record<ProviderName, Provider> = {
  'openai-compatible': openaiCompatible('openai-compatible'),
  openai: openaiCompatible('openai'),
  groq: openaiCompatible('groq'),
  openrouter: openaiCompatible('openrouter'),
  together: openaiCompatible('together'),
  huggingface: openaiCompatible('huggingface'),
  deepinfra: deepinfra(),
  azure: azure(),
  anthropic: anthropic(),
  gemini: gemini(),
};

/** The provider of an endpoint (`openai-compatible` unless it says otherwise). */
export function providerOf(endpoint: Pick<EndpointConfig, 'provider'>): Provider {
  return PROVIDERS[endpoint.provider] ?? PROVIDERS['openai-compatible'];
}

/**
 * The upstream request of an attempt in the endpoint's own protocol: the OpenAI body and path as they
 * are for openai-compatible endpoints (nothing looked at), translated or re-pathed for the others.
 * `body` is the OpenAI body to send (already renamed for the endpoint); `json` its parsed form.
 */
export function upstreamCall(args: {
  endpoint: EndpointConfig;
  path: string;
  body: Buffer;
  json: () => Readonly<Record<string, unknown>>;
  model: string;
  stream: boolean;
  now: () => number;
}): { path: string; body: Buffer; answer: AnswerTranslation | undefined } {
  const { endpoint, path, body, model } = args;
  if (endpoint.provider === 'openai-compatible') return { path, body, answer: undefined };
  const provider = providerOf(endpoint);
  if (provider.translate) {
    const { call, answer } = provider.translate({
      endpoint,
      path,
      json: args.json(),
      model,
      stream: args.stream,
      now: args.now,
    });
    return { ...call, answer };
  }
  return { path: provider.pathOf ? provider.pathOf(endpoint, path, model) : path, body, answer: undefined };
}
