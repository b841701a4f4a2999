import { withoutPassword } from '../config/config-problems.js';
import type { Logger } from '../observability/logger.js';
import type { CacheStore } from './cache/cache-store.js';
import { MemoryCache } from './cache/memory-cache.js';
import { RedisCache } from './cache/redis-cache.js';
import type { CounterStore } from './counters/counter-store.js';
import { MemoryCounters } from './counters/memory-counters.js';
import { RedisCounters } from './counters/redis-counters.js';
import { PostgresDriver } from './records/postgres-driver.js';
import { parseDatabaseUrl, type RecordStore } from './records/record-store.js';
import { SqlRecordStore } from './records/sql-records.js';
import { SqliteDriver } from './records/sqlite-driver.js';

/** Opens (and migrates) the record store DATABASE_URL names. */
export async function openRecordStore(url: string, logger: Logger): Promise<RecordStore> {
  const location = parseDatabaseUrl(url);
  if (!location)
    throw new Error(
      `DATABASE_URL must start with postgres://, postgresql:// or sqlite: (got ${withoutPassword(url)})`,
    );
  if (location.backend === 'sqlite')
    return SqlRecordStore.open(new SqliteDriver(location.path), `sqlite:${location.path}`);
  const shown = withoutPassword(location.url);
  const driver = new PostgresDriver(location.url, {
    onError: (err) =>
      logger.warn({ err: err.message, database: shown }, 'PostgreSQL connection lost; reconnecting'),
  });
  try {
    return await SqlRecordStore.open(driver, shown);
  } catch (err) {
    await driver.close().catch(() => undefined);
    throw new Error(`could not open the database at ${shown}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The counter store: Redis when REDIS_URL is set (shared by every replica), else in the process.
 * Redis errors are logged once per outage; the client reconnects by itself.
 */
export function openCounters(options: {
  redisUrl: string | undefined;
  prefix?: string;
  logger: Logger;
  now?: () => number;
}): CounterStore {
  const { redisUrl, logger } = options;
  if (redisUrl === undefined) return new MemoryCounters({ now: options.now });
  const outage = outageLog(logger, redisUrl, 'Redis');
  const store = new RedisCounters({
    url: redisUrl,
    // A hash tag: every key of one gateway lands in one slot, so its scripts also run on Redis Cluster.
    prefix: `${options.prefix ?? 'llm-gateway:'}{gw}:`,
    now: options.now,
    onError: outage.down,
  });
  store.onReady(outage.up);
  return store;
}

/**
 * The response cache's store (CACHE): in the process, bounded by CACHE_MAX_BYTES, or in the Redis of
 * REDIS_URL (shared by every replica); undefined when the cache is off. Redis errors are logged once
 * per outage.
 */
export function openCache(options: {
  mode: 'off' | 'memory' | 'redis';
  maxBytes: number;
  redisUrl: string | undefined;
  prefix?: string;
  logger: Logger;
  now?: () => number;
}): CacheStore | undefined {
  const { mode, redisUrl, logger } = options;
  if (mode === 'off') return undefined;
  if (mode === 'memory' || redisUrl === undefined)
    return new MemoryCache({ maxBytes: options.maxBytes, now: options.now });
  const outage = outageLog(logger, redisUrl, 'Redis (response cache)');
  const store = new RedisCache({
    url: redisUrl,
    prefix: options.prefix ?? 'llm-gateway:',
    onError: outage.down,
  });
  store.onReady(outage.up);
  return store;
}

/** A Redis client's connection problems, logged once per outage, and its return. */
function outageLog(
  logger: Logger,
  url: string,
  what: string,
): { down: (err: Error) => void; up: () => void } {
  let down = false;
  const shown = withoutPassword(url);
  return {
    down: (err) => {
      if (down) return;
      down = true;
      logger.error({ err: err.message, redis: shown }, `${what} unreachable; reconnecting`);
    },
    up: () => {
      if (down) logger.info({ redis: shown }, `${what} reachable again`);
      down = false;
    },
  };
}

/**
 * A record store usable at once while it opens (the gateway is composed synchronously; the store
 * connects and migrates meanwhile). Every call waits for the opening; `opened` rejects if it failed.
 */
export function openingRecordStore(
  url: string,
  logger: Logger,
): { store: RecordStore; opened: Promise<RecordStore> } {
  const opened = openRecordStore(url, logger);
  // Awaited by start-up, which reports the failure; a rejection must not go unhandled before that.
  opened.catch(() => undefined);
  const location = parseDatabaseUrl(url);
  const fixed: Pick<RecordStore, 'backend' | 'location'> = {
    backend: location?.backend ?? 'sqlite',
    location:
      location?.backend === 'postgres' ? withoutPassword(location.url) : `sqlite:${location?.path ?? ''}`,
  };
  const store = new Proxy({} as RecordStore, {
    get(target, prop: string) {
      if (prop === 'backend' || prop === 'location') return fixed[prop];
      return async (...args: unknown[]) => {
        const real = (await opened) as unknown as Record<string, (...a: unknown[]) => unknown>;
        return real[prop]!(...args);
      };
    },
  });
  return { store, opened };
}
