/**
 * Where the response cache keeps its entries: opaque bytes under a key, each with a time to live. In
 * the process (bounded by bytes, least recently used out first) or in Redis (shared by every replica).
 */
export interface CacheStore {
  readonly backend: 'memory' | 'redis';
  /** The entry, or undefined when there is none (or it expired). */
  get(key: string): Promise<Buffer | undefined>;
  /** Stores an entry for `ttlMs`; an entry too large for the store is not kept. */
  set(key: string, value: Buffer, ttlMs: number): Promise<void>;
  /** Removes every entry; how many there were. */
  clear(): Promise<number>;
  /** Entries and their bytes, where the store can tell cheaply. */
  stats(): { entries: number; bytes: number } | undefined;
  close(): Promise<void>;
}
