import type { GatewayConfig } from '../../config/types.js';
import type { Endpoint, EndpointRegistry } from './registry.js';

/**
 * Whether an endpoint is known to work, for readiness and the status route. Known to work means: it
 * takes traffic, lists models, is neither ejected nor cooling down after a 429, and the latest thing
 * seen of it, recently, was a success (a request that worked or a probe that passed). An endpoint never
 * seen working (down since start, with a static model list) is not counted as up.
 */
export type Condition =
  'up' | 'draining' | 'ejected' | 'half-open' | 'cooling-down' | 'failing' | 'no-models' | 'unverified';

export interface EndpointCondition {
  name: string;
  up: boolean;
  condition: Condition;
  /** Why it is not up, for operators (the admin status route; readiness shows the condition only). */
  reason: string | undefined;
}

/**
 * How recent the last success must be: two rounds of the slowest polling (a healthy endpoint is probed
 * every DISCOVERY_INTERVAL_MS), plus the time one poll may take.
 */
export function freshnessMs(config: GatewayConfig): number {
  const { discoveryIntervalMs, discoveryTimeoutMs } = config.models;
  return 2 * Math.max(discoveryIntervalMs, config.health.probeIntervalMs) + discoveryTimeoutMs;
}

export function conditionOf(ep: Endpoint, now: number, freshMs: number): EndpointCondition {
  const h = ep.health;
  const name = ep.config.name;
  const down = (condition: Condition, reason: string): EndpointCondition => ({
    name,
    up: false,
    condition,
    reason,
  });
  const lastError = h.lastError?.message;
  if (ep.config.weight <= 0) return down('draining', 'weight 0: drained by the configuration');
  if (h.ejectedUntil > now)
    return down(
      'ejected',
      `ejected until ${new Date(h.ejectedUntil).toISOString()}: ${lastError ?? 'failures'}`,
    );
  if (h.isEjected) return down('half-open', 'back from an ejection, waiting for its trial request');
  if (h.cooldownUntil > now)
    return down('cooling-down', `rate limited (429) until ${new Date(h.cooldownUntil).toISOString()}`);
  if (h.probeFailing) return down('failing', ep.lastDiscoveryError ?? lastError ?? 'its probe fails');
  if (!ep.modelsKnown) return down('no-models', ep.lastDiscoveryError ?? 'its models are not listed yet');
  if (ep.models.size === 0) return down('no-models', 'it lists no models');
  const lastSuccess = h.lastSuccessAt;
  if (h.consecutiveFailures > 0 && (h.lastError?.at ?? 0) >= (lastSuccess ?? 0))
    return down('failing', lastError ?? 'its last request failed');
  if (lastSuccess === undefined) return down('unverified', 'no request or probe has succeeded yet');
  if (now - lastSuccess > freshMs)
    return down('unverified', `nothing has succeeded for ${Math.round((now - lastSuccess) / 1000)} s`);
  return { name, up: true, condition: 'up', reason: undefined };
}

/** Every endpoint's condition, and the gateway's: ready, degraded (some down) or not ready (none up). */
export function readinessOf(
  registry: EndpointRegistry,
  config: GatewayConfig,
): { status: 'ready' | 'degraded' | 'not_ready'; up: number; endpoints: EndpointCondition[] } {
  const now = registry.health.now();
  const freshMs = freshnessMs(config);
  const endpoints = registry.endpoints.map((ep) => conditionOf(ep, now, freshMs));
  const up = endpoints.filter((e) => e.up).length;
  // A drained endpoint is the operator's choice, not a degradation.
  const down = endpoints.filter((e) => !e.up && e.condition !== 'draining').length;
  return { status: up === 0 ? 'not_ready' : down > 0 ? 'degraded' : 'ready', up, endpoints };
}
