import type { ConfigSource } from '../../config/config-store.js';
import type { Logger } from '../../observability/logger.js';
import type { CacheStore } from '../../stores/cache/cache-store.js';
import type { Principal } from '../core/principal.js';
import { cacheKey, scopeOf } from './cache-key.js';
import { decodeAnswer, encodeAnswer, type CachedAnswer } from './cached-answer.js';

/**
 * What the cache does for one request: look up, then store a miss (`use`); skip the lookup but store
 * (`refresh`: `Cache-Control: no-cache`); neither (`bypass`: `no-store`, `"x-gateway": {"cache": false}`).
 */
export type CacheUse = 'use' | 'refresh' | 'bypass';

/** The request's wish, from its Cache-Control header and its `x-gateway.cache`. */
export function cacheUseOf(
  cacheControl: string | string[] | undefined,
  extensionCache: boolean | undefined,
): CacheUse {
  if (extensionCache === false) return 'bypass';
  if (cacheControl === undefined) return 'use';
  const directives = (Array.isArray(cacheControl) ? cacheControl.join(',') : cacheControl).toLowerCase();
  if (/(^|[\s,])no-store([\s,=]|$)/.test(directives)) return 'bypass';
  if (/(^|[\s,])no-cache([\s,=]|$)/.test(directives)) return 'refresh';
  return 'use';
}

export interface ResponseCacheOptions {
  store: CacheStore;
  config: ConfigSource;
  logger: Logger;
  now: () => number;
}

/**
 * The exact-match response cache: complete successful answers under a key made of the canonical body
 * and the caller's scope, kept for CACHE_TTL. A store that fails is a miss, never an error for the
 * request: logged once per outage.
 */
export class ResponseCache {
  hits = 0;
  misses = 0;
  stored = 0;
  private outageSince: number | undefined;

  constructor(private readonly options: ResponseCacheOptions) {}

  get backend(): 'memory' | 'redis' {
    return this.options.store.backend;
  }

  /**
   * The largest answer kept: 8 MiB, and at most an eighth of a memory cache (one huge answer must not
   * push out many small ones).
   */
  get maxEntryBytes(): number {
    const limit = 8 * 1024 * 1024;
    return this.options.store.backend === 'memory'
      ? Math.min(limit, Math.floor(this.options.config.current.cache.maxBytes / 8))
      : limit;
  }

  /** The key of a request's answer for this caller. */
  keyOf(json: Readonly<Record<string, unknown>>, principal: Principal): string {
    return cacheKey(json, scopeOf(this.options.config.current.cache.scope, principal));
  }

  async lookup(key: string): Promise<CachedAnswer | undefined> {
    let entry: Buffer | undefined;
    try {
      entry = await this.options.store.get(key);
      this.recovered();
    } catch (err) {
      this.failed(err);
      return undefined;
    }
    const answer = entry === undefined ? undefined : decodeAnswer(entry);
    if (answer) this.hits++;
    else this.misses++;
    return answer;
  }

  /** Keeps an answer; the request does not wait for it. */
  store(key: string, answer: CachedAnswer): void {
    this.stored++;
    this.options.store.set(key, encodeAnswer(answer), this.options.config.current.cache.ttl).then(
      () => this.recovered(),
      (err: unknown) => this.failed(err),
    );
  }

  /** Removes every entry (of every replica, with Redis); how many there were. */
  clear(): Promise<number> {
    return this.options.store.clear();
  }

  /** For the status route. */
  get status() {
    const { cache } = this.options.config.current;
    const stats = this.options.store.stats();
    return {
      mode: this.options.store.backend,
      scope: cache.scope,
      ttlSeconds: Math.round(cache.ttl / 1_000),
      maxBytes: this.options.store.backend === 'memory' ? cache.maxBytes : null,
      entries: stats?.entries ?? null,
      bytes: stats?.bytes ?? null,
      hits: this.hits,
      misses: this.misses,
      stored: this.stored,
      reachable: this.outageSince === undefined,
      unreachableSince: this.outageSince === undefined ? null : new Date(this.outageSince).toISOString(),
    };
  }

  close(): Promise<void> {
    return this.options.store.close();
  }

  private failed(err: unknown): void {
    if (this.outageSince !== undefined) return;
    this.outageSince = this.options.now();
    this.options.logger.error(
      { err: (err as Error).message },
      'response cache unreachable: requests go upstream (misses) until it is back',
    );
  }

  private recovered(): void {
    if (this.outageSince === undefined) return;
    this.options.logger.info(
      { unreachableForMs: this.options.now() - this.outageSince },
      'response cache reachable again',
    );
    this.outageSince = undefined;
  }
}
