/**
 * The provider types an endpoint may have (CONFIG.md, providers): the wire protocol the gateway speaks
 * to it. Hosted OpenAI-compatible services are presets: the same protocol, a known base URL.
 */
export const PROVIDER_NAMES = [
  'openai-compatible',
  'openai',
  'azure',
  'anthropic',
  'gemini',
  'groq',
  'openrouter',
  'together',
  'deepinfra',
  'huggingface',
] as const;

export type ProviderName = (typeof PROVIDER_NAMES)[number];

/** The base URL of providers that have one (an endpoint of that provider may leave `url` out). */
export const PROVIDER_URLS: Partial<Record<ProviderName, string>> = {
  openai: 'https://api.openai.com',
  anthropic: 'https://api.anthropic.com',
  gemini: 'https://generativelanguage.googleapis.com',
  groq: 'https://api.groq.com/openai',
  openrouter: 'https://openrouter.ai/api',
  together: 'https://api.together.xyz',
  deepinfra: 'https://api.deepinfra.com/v1/openai',
  huggingface: 'https://router.huggingface.co',
};

/** Anthropic's API version header, unless the endpoint's `apiVersion` says otherwise. */
export const ANTHROPIC_VERSION = '2023-06-01';
/** Azure OpenAI's `api-version`, unless the endpoint's `apiVersion` says otherwise. */
export const AZURE_API_VERSION = '2024-10-21';
/** `max_tokens` sent to Anthropic when the client gives none (Anthropic requires it). */
export const DEFAULT_MAX_TOKENS = 4096;
