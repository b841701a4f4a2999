import { Router } from 'express';
import type { EndpointRegistry } from '../../services/endpoints/registry.js';
import type { RuntimeEndpoints } from '../../services/endpoints/runtime-endpoints.js';
import type { RuntimeEndpointRecord } from '../../stores/records/record-store.js';
import { jsonBody } from './keys.js';

/** A runtime endpoint as the admin API shows it: its settings as given, never its key. */
function view(record: RuntimeEndpointRecord) {
  const { apiKey, ...spec } = record.spec;
  return {
    object: 'endpoint',
    ...spec,
    name: record.name,
    hasApiKey: typeof apiKey === 'string' && apiKey.length > 0,
    source: 'runtime' as const,
    createdAt: new Date(record.createdAt).toISOString(),
    updatedAt: new Date(record.updatedAt).toISOString(),
  };
}

/**
 * `/api/v1/endpoints` (admin key): every endpoint in force and where it came from (`config` or
 * `runtime`); runtime ones are added, changed and removed here, and reach every replica within a second.
 */
export function endpointRoutes(registry: EndpointRegistry, runtime: RuntimeEndpoints): Router {
  const router = Router();
  const paramName = (req: { params: Record<string, string | string[] | undefined> }) => {
    const { name } = req.params;
    return Array.isArray(name) ? name.join('/') : (name ?? '');
  };
  router.get('/endpoints', (_req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.json({
      object: 'list',
      data: registry.endpoints.map((ep) => ({
        object: 'endpoint',
        name: ep.config.name,
        url: ep.config.url,
        priority: ep.config.priority,
        weight: ep.config.weight,
        models: ep.config.models ?? null,
        maxConcurrent: ep.config.maxConcurrent ?? null,
        hasApiKey: ep.config.apiKey !== undefined,
        source: runtime.names.has(ep.config.name) ? 'runtime' : 'config',
      })),
    });
  });
  router.post('/endpoints', jsonBody, async (req, res) => {
    const record = await runtime.add(req.body);
    res.status(201).json(view(record));
  });
  router.patch('/endpoints/:name', jsonBody, async (req, res) => {
    res.json(view(await runtime.update(paramName(req), req.body)));
  });
  router.delete('/endpoints/:name', async (req, res) => {
    const name = paramName(req);
    await runtime.remove(name);
    res.json({ object: 'endpoint.deleted', name, deleted: true });
  });
  return router;
}
