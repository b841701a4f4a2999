import type { RequestHandler } from 'express';
import type { EndpointRegistry } from '../../services/endpoints/registry.js';

export function liveness(): RequestHandler {
  return (_req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.json({ status: 'ok' });
  };
}

/** Ready when at least one endpoint can take traffic, and not while shutting down. */
export function readiness(registry: EndpointRegistry, isShuttingDown: () => boolean): RequestHandler {
  return (_req, res) => {
    const now = registry.health.now();
    const usable = registry.usable(now).length;
    const ready = !isShuttingDown() && usable > 0;
    res.setHeader('cache-control', 'no-store');
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : isShuttingDown() ? 'shutting_down' : 'not_ready',
      endpoints: { usable, total: registry.endpoints.length },
    });
  };
}
