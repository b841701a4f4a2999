import type { RequestHandler } from 'express';
import { ModelNotFoundError } from '../../errors/gateway-error.js';
import type { EndpointRegistry, ModelInfo } from '../../services/endpoint-registry.js';

function toOpenAIModel(m: ModelInfo, ownedBy: string) {
  return { id: m.id, object: 'model' as const, created: m.created, owned_by: ownedBy };
}

export function listModels(registry: EndpointRegistry, ownedBy: () => string): RequestHandler {
  return (_req, res) => {
    res.json({ object: 'list', data: registry.listModels().map((m) => toOpenAIModel(m, ownedBy())) });
  };
}

/** `GET /v1/models/{id}`; ids such as `meta-llama/Llama-3.1-8B` contain slashes. */
export function getModel(registry: EndpointRegistry, ownedBy: () => string): RequestHandler {
  return (req, res) => {
    const segments = (req.params as Record<string, string | string[]>).model ?? [];
    const id = Array.isArray(segments) ? segments.join('/') : segments;
    const model = registry.listModels().find((m) => m.id === id);
    if (!model) throw new ModelNotFoundError(id);
    res.json(toOpenAIModel(model, ownedBy()));
  };
}
