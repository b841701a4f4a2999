import { createRequire } from 'node:module';
import type * as IORedis from 'ioredis';
import type { Redis } from 'ioredis';
import type { CacheStore } from './cache-store.js';

/** Loaded only when the Redis cache is configured. */
const loadRedis = () => (createRequire(import.meta.url)('ioredis') as typeof IORedis).Redis;

/** Keys removed per UNLINK while clearing. */
const CLEAR_BATCH = 500;

export interface RedisCacheOptions {
  url: string;
  /** Start of every key (REDIS_PREFIX): gateways that must not share answers may share one Redis. */
  prefix: string;
  /** Connection problems (the client reconnects by itself); lookups are misses meanwhile. */
  onError?: (err: Error) => void;
  /** Longest wait for a lookup or a write: a slow Redis must not hold a request up for long. */
  commandTimeoutMs?: number;
  /** Largest entry kept: a huge answer is not worth a round trip of its size. */
  maxEntryBytes?: number;
}

/**
 * Entries in Redis, shared by every replica: `SET … PX ttl`, so that Redis expires them. Keys carry no
 * hash tag: on a Redis Cluster they spread over the nodes. While Redis is unreachable, commands fail
 * at once (no offline queue): the response cache treats that as a miss.
 */
export class RedisCache implements CacheStore {
  readonly backend = 'redis' as const;
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly maxEntryBytes: number;

  constructor(options: RedisCacheOptions) {
    this.prefix = `${options.prefix}cache:`;
    this.maxEntryBytes = options.maxEntryBytes ?? 8 * 1024 * 1024;
    const RedisClient = loadRedis();
    this.redis = new RedisClient(options.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: options.commandTimeoutMs ?? 500,
      connectTimeout: 2_000,
      retryStrategy: (times) => Math.min(1_000, 50 * times),
    });
    this.redis.on('error', (err: Error) => options.onError?.(err));
  }

  /** Calls `handler` each time the connection is (re-)established. */
  onReady(handler: () => void): void {
    this.redis.on('ready', handler);
  }

  async get(key: string): Promise<Buffer | undefined> {
    return (await this.redis.getBuffer(this.prefix + key)) ?? undefined;
  }

  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    if (value.length > this.maxEntryBytes) return;
    await this.redis.set(this.prefix + key, value, 'PX', Math.max(1, Math.round(ttlMs)));
  }

  async clear(): Promise<number> {
    let cleared = 0;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(
        cursor,
        'MATCH',
        `${escapeGlob(this.prefix)}*`,
        'COUNT',
        1_000,
      );
      cursor = next;
      for (let i = 0; i < keys.length; i += CLEAR_BATCH)
        cleared += await this.redis.unlink(...keys.slice(i, i + CLEAR_BATCH));
    } while (cursor !== '0');
    return cleared;
  }

  stats(): undefined {
    return undefined;
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** A prefix as a literal in a SCAN pattern. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
