import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryCounters } from '../../src/stores/counters/memory-counters.js';
import { RedisCounters } from '../../src/stores/counters/redis-counters.js';
import { HAS_REDIS, REDIS_URL } from '../helpers/services.js';
import { counterStoreContract } from './counter-store.contract.js';

counterStoreContract('memory', (now) => Promise.resolve({ store: new MemoryCounters({ now }), prefix: '' }));

if (HAS_REDIS)
  counterStoreContract('redis', async (now) => {
    // A prefix of its own per store: runs never see each other's counters.
    const store = new RedisCounters({ url: REDIS_URL, now, prefix: `test:${randomUUID()}:{gw}:` });
    await store.ready();
    return { store, prefix: '' };
  });

describe.runIf(HAS_REDIS)('Redis counters: keys expire when they can no longer matter', () => {
  it('a window key gets its lifetime with the first amount of each bucket, not on every call', async () => {
    const { Redis } = await import('ioredis');
    const redis = new Redis(REDIS_URL);
    let t = 6_000_000;
    const prefix = `test:${randomUUID()}:{gw}:`;
    const store = new RedisCounters({ url: REDIS_URL, now: () => t, prefix });
    await store.ready();
    try {
      const rpm = { kind: 'count', key: 'rpm:ttl', limit: 100, windowMs: 60_000 } as const;
      const key = `${prefix}rpm:ttl:b`;
      expect((await store.admit('a1', [rpm])).ok).toBe(true);
      const first = await redis.pttl(key);
      // A minute window and two buckets of 100 ms.
      expect(first).toBeGreaterThan(59_000);
      expect(first).toBeLessThanOrEqual(60_200);
      // Within the same bucket, the lifetime is not set again.
      await redis.persist(key);
      expect((await store.admit('a2', [rpm])).ok).toBe(true);
      expect(await redis.pttl(key)).toBe(-1);
      // The first amount of a new bucket sets it again.
      t += 100;
      expect((await store.admit('a3', [rpm])).ok).toBe(true);
      expect(await redis.pttl(key)).toBeGreaterThan(59_000);
      expect(
        await redis.hmget(key, 't', String(Math.floor(t / 100)), String(Math.floor(t / 100) - 1)),
      ).toEqual(['3', '1', '2']);
    } finally {
      await store.close();
      await redis.quit();
    }
  });
});
