import { AZURE_API_VERSION, type ProviderName } from '../../config/providers.js';
import type { EndpointConfig } from '../../config/types.js';
import type { Provider } from './provider.js';

const OPENAI_ROUTES = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings']);

function bearer(endpoint: EndpointConfig): Record<string, string> {
  return endpoint.apiKey ? { authorization: `Bearer ${endpoint.apiKey}` } : {};
}

const modelList = {
  path: '/v1/models',
  items: (json: unknown) => {
    const data = (json as { data?: unknown } | null)?.data;
    return Array.isArray(data) ? data : undefined;
  },
};

/**
 * OpenAI's protocol as it is: vLLM, SGLang, Ollama, llama.cpp and every hosted OpenAI-compatible
 * service. Nothing is translated: requests and answers pass byte for byte.
 */
export function openaiCompatible(name: ProviderName): Provider {
  return {
    name,
    serves: (path) => OPENAI_ROUTES.has(path),
    continues: true,
    credentials: bearer,
    models: modelList,
  };
}

/** DeepInfra's base URL carries the version (`…/v1/openai`): its routes come without `/v1`. */
export function deepinfra(): Provider {
  return {
    ...openaiCompatible('deepinfra'),
    models: { ...modelList, path: '/models' },
    pathOf: (_endpoint, path) => path.replace(/^\/v1/, ''),
  };
}

/**
 * Azure OpenAI: OpenAI's bodies, a path per deployment (`/openai/deployments/{deployment}/…?api-version=`)
 * and the key as `api-key`. Its models are its deployments' (no list is asked).
 */
export function azure(): Provider {
  return {
    name: 'azure',
    serves: (path) => OPENAI_ROUTES.has(path),
    continues: true,
    credentials: (endpoint): Record<string, string> =>
      endpoint.apiKey ? { 'api-key': endpoint.apiKey } : {},
    models: undefined,
    pathOf: (endpoint, path, model) => {
      const deployment = endpoint.deployments?.[model] ?? model;
      const version = encodeURIComponent(endpoint.apiVersion ?? AZURE_API_VERSION);
      return `/openai/deployments/${encodeURIComponent(deployment)}${path.replace(/^\/v1/, '')}?api-version=${version}`;
    },
  };
}
