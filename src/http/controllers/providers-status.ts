import type { RequestHandler } from 'express';
import type { ConfigSource } from '../../config/config-store.js';
import { readinessOf, type EndpointCondition } from '../../services/endpoints/condition.js';
import type { Endpoint, EndpointRegistry } from '../../services/endpoints/registry.js';

export type EndpointState = 'healthy' | 'ejected' | 'half-open' | 'cooling-down' | 'draining';

/** One endpoint as an operator sees it: never its key, nor credentials in its URL. */
function describeEndpoint(
  ep: Endpoint,
  now: number,
  condition: EndpointCondition | undefined,
  source: 'config' | 'runtime',
) {
  const h = ep.health;
  const state: EndpointState = ep.config.weight > 0 ? h.state(now) : 'draining';
  return {
    name: ep.config.name,
    /** Where it came from: the config file (or ENDPOINTS), or the admin API. */
    source,
    /** Known to work right now (what readiness counts), and if not, why. */
    up: condition?.up ?? false,
    condition: condition?.condition ?? 'unverified',
    reason: condition?.reason ?? null,
    lastSuccessAt: h.lastSuccessAt === undefined ? null : new Date(h.lastSuccessAt).toISOString(),
    // The config rejects credentials in URLs, so the URL is safe to show.
    url: ep.config.url,
    priority: ep.config.priority,
    weight: ep.config.weight,
    maxConcurrent: ep.config.maxConcurrent ?? null,
    state,
    ejectedUntil: h.ejectedUntil > now ? new Date(h.ejectedUntil).toISOString() : null,
    coolingDownUntil: h.cooldownUntil > now ? new Date(h.cooldownUntil).toISOString() : null,
    ejections: h.ejections,
    inFlight: h.inFlight,
    requests: h.requests,
    failures: h.failures,
    consecutiveFailures: h.consecutiveFailures,
    errorRatio: round(h.errorRatio),
    ewmaLatencyMs: h.ewmaLatencyMs === undefined ? null : Math.round(h.ewmaLatencyMs),
    ewmaTtfbMs: h.ewmaTtfbMs === undefined ? null : Math.round(h.ewmaTtfbMs),
    probe: {
      ok: !h.probeFailing,
      lastAt: h.lastProbeAt === undefined ? null : new Date(h.lastProbeAt).toISOString(),
      error: ep.lastDiscoveryError ?? null,
    },
    models: [...ep.models],
    modelsSource: ep.config.models !== undefined ? 'static' : 'discovered',
    lastError: h.lastError
      ? { kind: h.lastError.kind, message: h.lastError.message, at: new Date(h.lastError.at).toISOString() }
      : null,
  };
}

/** `GET /api/v1/providers/status` (admin key): the live state of every endpoint. */
export function providersStatus(
  registry: EndpointRegistry,
  config: ConfigSource,
  stores: () => { limits: unknown; keys: unknown; usage: unknown; cache: unknown },
  sourceOf: (name: string) => 'config' | 'runtime' = () => 'config',
): RequestHandler {
  return (_req, res) => {
    const now = registry.health.now();
    const readiness = readinessOf(registry, config.current);
    const endpoints = registry.endpoints.map((ep, i) =>
      describeEndpoint(ep, now, readiness.endpoints[i], sourceOf(ep.config.name)),
    );
    res.setHeader('cache-control', 'no-store');
    res.json({
      object: 'providers.status',
      time: new Date(now).toISOString(),
      /** The process answering: with WORKERS > 1 each worker keeps its own endpoint health. */
      pid: process.pid,
      ready: readiness.status !== 'not_ready',
      status: readiness.status,
      endpoints,
      /** Where limits are counted and whether that store answers (limits.onStoreError applies if not). */
      ...stores(),
    });
  };
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
