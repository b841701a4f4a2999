import { randomUUID } from 'node:crypto';
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
