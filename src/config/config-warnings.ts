import { isLoopbackHost, keyWeakness, ROUTE_SUFFIXES } from './schema.js';
import type { GatewayConfig } from './types.js';

/** Settings that are valid but probably not what the operator meant. */
export function configWarnings(
  config: GatewayConfig,
  raw: Record<string, unknown>,
  fromEnv: Map<string, string>,
): string[] {
  const warnings: string[] = [];
  const rawEndpoints = Array.isArray(raw.endpoints) ? (raw.endpoints as unknown[]) : [];
  const where = fromEnv.has('endpoints') ? 'ENDPOINTS: ' : '';
  const firstByUrl = new Map<string, number>();
  config.endpoints.forEach((ep, i) => {
    const label = `endpoints[${i}] (${ep.name})`;
    const rawUrl = (rawEndpoints[i] as { url?: unknown } | undefined)?.url;
    if (typeof rawUrl === 'string') {
      const pathname = safePathname(rawUrl);
      const route = ROUTE_SUFFIXES.find((r) => pathname.replace(/\/+$/, '').toLowerCase().endsWith(r));
      if (route)
        warnings.push(`${where}${label}.url ends in ${route}: using ${ep.url}, the base URL, instead`);
    }
    const first = firstByUrl.get(ep.url);
    if (first === undefined) firstByUrl.set(ep.url, i);
    else
      warnings.push(
        `${where}${label} has the same url as endpoints[${first}] (${config.endpoints[first]!.name}), ` +
          `${ep.url}: that server takes the traffic of both entries`,
      );
  });
  const { host } = config.server;
  const { auth } = config;
  if (!isLoopbackHost(host)) {
    if (auth.disabled)
      warnings.push(
        `AUTH_DISABLED=true while HOST ${host} lets other machines connect: anyone who reaches this ` +
          'port can use your endpoints',
      );
    if (auth.allowWeakKeys && [...auth.apiKeys, auth.adminKey ?? ''].some((k) => k && keyWeakness(k)))
      warnings.push(
        `ALLOW_WEAK_KEYS=true: a placeholder or short key is in use while HOST ${host} lets other ` +
          'machines connect',
      );
  }
  if (config.keys.claim.enabled && !config.keys.claim.captcha && !isLoopbackHost(host))
    warnings.push(
      `keys.claim is enabled without a captcha while HOST ${host} lets other machines connect: any ` +
        `script can claim ${config.keys.claim.perIpPerDay} keys a day per address; set keys.claim.captcha`,
    );
  const { limits } = config;
  const budgeted = [
    limits.global,
    limits.keyDefaults,
    config.keys.claim.limits,
    ...Object.values(limits.models),
  ].some((l) => l?.budget !== undefined);
  if (budgeted && Object.keys(config.pricing).length === 0)
    warnings.push(
      'a budget is set but `pricing` lists no model: every request costs 0 and no budget is ever spent',
    );
  if (auth.adminKey !== undefined && auth.apiKeys.includes(auth.adminKey))
    warnings.push(
      'ADMIN_API_KEY is also a client key (API_KEY): every client can use the admin routes; give it a ' +
        'key of its own',
    );
  const { cache, server } = config;
  if (cache.mode === 'memory' && server.workers > 1)
    warnings.push(
      `CACHE=memory with WORKERS=${server.workers}: each worker keeps a cache of its own (up to ` +
        `${server.workers} × CACHE_MAX_BYTES in all, and a hit only in the worker that stored it); ` +
        'CACHE=redis shares one',
    );
  return warnings;
}

function safePathname(url: string): string {
  try {
    return new URL(url.trim()).pathname;
  } catch {
    return '';
  }
}
