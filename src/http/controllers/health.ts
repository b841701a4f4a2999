import type { RequestHandler } from 'express';
import type { ConfigSource } from '../../config/config-store.js';
import { readinessOf } from '../../services/endpoints/condition.js';
import type { EndpointRegistry } from '../../services/endpoints/registry.js';

export function liveness(): RequestHandler {
  return (_req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.json({ status: 'ok' });
  };
}

/**
 * `200 ready` when every endpoint is known to work, `200 degraded` when some are down, `503 not_ready`
 * when none is known to work (or `503 shutting_down`). Each endpoint's name and condition are in the
 * body, never a key, a URL or an error message (the route has no auth).
 */
export function readiness(
  registry: EndpointRegistry,
  config: ConfigSource,
  isShuttingDown: () => boolean,
): RequestHandler {
  return (_req, res) => {
    const { status, up, endpoints } = readinessOf(registry, config.current);
    const stopping = isShuttingDown();
    res.setHeader('cache-control', 'no-store');
    res.status(stopping || status === 'not_ready' ? 503 : 200).json({
      status: stopping ? 'shutting_down' : status,
      up,
      total: endpoints.length,
      endpoints: endpoints.map((e) => ({ name: e.name, condition: e.condition })),
    });
  };
}
