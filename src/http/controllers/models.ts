import type { RequestHandler } from 'express';
import type { ConfigSource } from '../../config/config-store.js';
import { ModelNotFoundError } from '../../errors/gateway-error.js';
import { missingModelError } from '../../services/endpoints/missing-model.js';
import { principalOf } from '../principal.js';
import type { EndpointRegistry, ModelInfo } from '../../services/endpoints/registry.js';

/** Every served model, then every alias with at least one served target (clients may ask for either). */
function catalogue(registry: EndpointRegistry, config: ConfigSource): ModelInfo[] {
  const models = registry.listModels();
  const byId = new Map(models.map((m) => [m.id, m]));
  for (const [alias, targets] of Object.entries(config.current.aliases)) {
    if (byId.has(alias)) continue;
    const served = targets.map((t) => byId.get(t)).filter((m): m is ModelInfo => m !== undefined);
    if (served.length > 0)
      models.push({ id: alias, created: Math.min(...served.map((m) => m.created)), meta: {} });
  }
  return models;
}

/**
 * OpenAI's model object, then what the upstream said of the model besides (vLLM's `max_model_len`,
 * `root`, `parent`…): clients size their requests by it. `owned_by` is the gateway's (AkashChat sorts by it).
 */
function toOpenAIModel(m: ModelInfo, config: ConfigSource) {
  return {
    ...m.meta,
    id: m.id,
    object: 'model' as const,
    created: m.created,
    owned_by: config.current.models.ownedBy,
  };
}

/**
 * Until the first discovery round has ended the list is not known: clients such as AkashChat cache
 * what they get (for 10 minutes), so an empty list would hide every model that long. The first round
 * is bounded by DISCOVERY_TIMEOUT_MS.
 */
export type DiscoveryWait = () => Promise<void> | undefined;

export function listModels(
  registry: EndpointRegistry,
  config: ConfigSource,
  discovered: DiscoveryWait,
): RequestHandler {
  return async (_req, res) => {
    await discovered();
    // A key limited to some models sees only those.
    const allowed = principalOf(res).models;
    const models = catalogue(registry, config).filter((m) => allowed === undefined || allowed.has(m.id));
    res.json({ object: 'list', data: models.map((m) => toOpenAIModel(m, config)) });
  };
}

/** `GET /v1/models/{id}`; ids such as `meta-llama/Llama-3.1-8B` contain slashes. */
export function getModel(
  registry: EndpointRegistry,
  config: ConfigSource,
  discovered: DiscoveryWait,
): RequestHandler {
  return async (req, res) => {
    await discovered();
    const segments = (req.params as Record<string, string | string[]>).model ?? [];
    const id = Array.isArray(segments) ? segments.join('/') : segments;
    const allowed = principalOf(res).models;
    if (allowed !== undefined && !allowed.has(id))
      throw new ModelNotFoundError(id, {
        all: true,
        ids: catalogue(registry, config)
          .map((m) => m.id)
          .filter((m) => allowed.has(m)),
      });
    const model = catalogue(registry, config).find((m) => m.id === id);
    if (!model)
      throw missingModelError(registry, id, {
        aliases: config.current.aliases,
        retryAfterSeconds: Math.ceil(config.current.health.probeIntervalMs / 1000),
      });
    res.json(toOpenAIModel(model, config));
  };
}
