import type { ProviderName } from '../../config/providers.js';
import type { EndpointConfig } from '../../config/types.js';
import { anthropic } from './anthropic.js';
import { gemini } from './gemini.js';
import { azure, deepinfra, openaiCompatible } from './openai-family.js';
import type { Provider } from './provider.js';

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
