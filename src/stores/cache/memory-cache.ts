import { LRUCache } from 'lru-cache';
import type { CacheStore } from './cache-store.js';

/**
 * What an entry costs the process besides its bytes, as measured (resident memory per entry, minus its
 * bytes, for values of 0.5 to 20 KB: 1.4 KB each time): its key, the map's node and the LRU's arrays on
 * V8's heap (about 370 B), the Buffer's backing-store bookkeeping and malloc's, and the heap's headroom.
 */
export const ENTRY_OVERHEAD_BYTES = 1_536;

export interface MemoryCacheOptions {
  /** The bound of all entries together (keys and bookkeeping included). */
  maxBytes: number;
  /** A clock for tests (milliseconds, monotonic). */
  now?: () => number;
}

/**
 * Entries in the process: a least-recently-used map bounded by bytes. The values are Buffers, outside
 * V8's heap, so their size is exact and they never slow the garbage collector down.
 */
export class MemoryCache implements CacheStore {
  readonly backend = 'memory' as const;
  private readonly lru: LRUCache<string, Buffer>;

  constructor(options: MemoryCacheOptions) {
    this.lru = new LRUCache<string, Buffer>({
      maxSize: options.maxBytes,
      // One entry may take at most an eighth of the bound: a huge answer must not empty the cache.
      maxEntrySize: Math.max(1, Math.floor(options.maxBytes / 8)),
      sizeCalculation: (value, key) => value.length + key.length + ENTRY_OVERHEAD_BYTES,
      // An injected clock is read at every lookup (no cached "now" that a timer refreshes).
      ...(options.now ? { perf: { now: options.now }, ttlResolution: 0 } : {}),
    });
  }

  get(key: string): Promise<Buffer | undefined> {
    return Promise.resolve(this.lru.get(key));
  }

  set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    this.lru.set(key, value, { ttl: ttlMs });
    return Promise.resolve();
  }

  clear(): Promise<number> {
    // Expired entries still held are not answers any more: not counted.
    let live = 0;
    for (const _key of this.lru.keys()) live++;
    this.lru.clear();
    return Promise.resolve(live);
  }

  stats(): { entries: number; bytes: number } {
    return { entries: this.lru.size, bytes: this.lru.calculatedSize };
  }

  close(): Promise<void> {
    this.lru.clear();
    return Promise.resolve();
  }
}
