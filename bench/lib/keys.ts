import { writeFileSync } from 'node:fs';
import path from 'node:path';

/** The admin key of the benchmarks' gateways with virtual keys. */
export const BENCH_ADMIN_KEY = 'bench-admin-key-0123456789';
/** Limits high enough that nothing is refused: every check runs, none stops a request. */
export const HUGE_LIMITS = { rpm: 100_000_000, tpm: 100_000_000_000, maxParallel: 100_000 };

/**
 * The environment of a gateway whose virtual keys are limited at the key, team and global scopes:
 * a config file with the global limit (written into `dir`), counters in Redis at `redisUrl` (in memory
 * when empty), keys and the ledger in SQLite in `dir`.
 */
export function keysGatewayEnv(dir: string, redisUrl: string, prefix: string): Record<string, string> {
  const yaml = path.join(dir, 'gateway.yaml');
  writeFileSync(yaml, 'limits:\n  global: { rpm: 100000000, tpm: 100000000000, maxParallel: 100000 }\n');
  return {
    ADMIN_API_KEY: BENCH_ADMIN_KEY,
    CONFIG_FILE: yaml,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    DATABASE_URL: `sqlite:${path.join(dir, 'keys.db')}`,
  };
}

/** A team and a key in it, each with HUGE_LIMITS, made through the admin API; resolves with the secret. */
export async function createLimitedKey(gatewayUrl: string): Promise<string> {
  const post = async (route: string, body: object) => {
    const res = await fetch(`${gatewayUrl}/api/v1/${route}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BENCH_ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status !== 201) throw new Error(`${route}: ${res.status} ${await res.text()}`);
    return (await res.json()) as { key: string };
  };
  await post('teams', { id: 'bench', limits: HUGE_LIMITS });
  return (await post('keys', { name: 'bench', team: 'bench', limits: HUGE_LIMITS })).key;
}
