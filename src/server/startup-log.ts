import { configOrigin } from '../config/load-config.js';
import type { GatewayConfig } from '../config/types.js';
import { withoutPassword } from '../config/config-problems.js';
import type { Logger } from '../observability/logger.js';

/** What the `listening` line says about a configuration (names and counts, never keys). */
export function startupFacts(config: GatewayConfig, address: string): Record<string, unknown> {
  const origin = configOrigin(config);
  return {
    address,
    endpoints: config.endpoints.map((e) => ({ name: e.name, priority: e.priority, weight: e.weight })),
    auth: config.auth.disabled ? 'disabled' : `${config.auth.apiKeys.length} key(s)`,
    admin: config.auth.adminKey === undefined ? 'off (ADMIN_API_KEY is not set)' : 'on',
    keys: withoutPassword(config.database.url),
    counters: config.redis.url === undefined ? 'in the process' : withoutPassword(config.redis.url),
    configFile: origin?.configFile ?? null,
    envFile: origin?.envFile ?? null,
  };
}

/** Each warning of the configuration as its own line, at warn level. */
export function logConfigWarnings(config: GatewayConfig, logger: Logger): void {
  for (const warning of configOrigin(config)?.warnings ?? []) logger.warn(`configuration: ${warning}`);
}
