import { describe, expect, it } from 'vitest';
import type { KeyRecord, RecordStore, UsageRecord } from '../../src/stores/records/record-store.js';

function usage(over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    id: `req-${Math.random().toString(36).slice(2)}`,
    time: Date.parse('2026-12-01T10:00:00Z'),
    keyId: 'key_a',
    team: 'lab',
    user: 'alice',
    model: 'llama',
    servedModel: 'llama',
    endpoint: 'gpu-a',
    stream: false,
    status: 200,
    errorCode: null,
    promptTokens: 10,
    completionTokens: 5,
    estimated: false,
    cost: 0.25,
    ttftMs: 120,
    durationMs: 800,
    attempts: 1,
    cached: false,
    metadata: null,
    ...over,
  };
}

/**
 * Makes a fresh, empty database and returns how to open it: each call is another connection to the
 * same database (a second replica, a restart), migrating it if it is new.
 */
export type RecordFactory = () => Promise<() => Promise<RecordStore>>;

let seq = 0;
function key(over: Partial<KeyRecord> = {}): KeyRecord {
  seq++;
  return {
    id: `key_${seq}_${Math.random().toString(36).slice(2, 8)}`,
    hash: `hash-${seq}-${Math.random()}`,
    preview: 'sk-gw-…abcd',
    name: `key ${seq}`,
    team: null,
    user: null,
    models: null,
    expiresAt: null,
    limits: null,
    metadata: null,
    identity: null,
    createdAt: 1_000 + seq,
    updatedAt: 1_000 + seq,
    revokedAt: null,
    lastUsedAt: null,
    ...over,
  };
}

/** One contract for every record store (SQLite, PostgreSQL). */
export function recordStoreContract(name: string, factory: RecordFactory): void {
  describe(`record store contract: ${name}`, () => {
    it('keeps keys: insert, get by id and by hash, JSON fields intact', async () => {
      const store = await (await factory())();
      const k = key({
        team: null,
        user: 'alice',
        models: ['llama', 'chat'],
        limits: { rpm: 10, budget: { amount: 2.5, period: 'month' } },
        metadata: { project: 'x', nested: { a: [1, 2] } },
        expiresAt: 9_999_999_999_999,
      });
      await store.insertKey(k);
      expect(await store.getKey(k.id)).toEqual(k);
      expect(await store.keyByHash(k.hash)).toEqual(k);
      expect(await store.getKey('key_missing')).toBeUndefined();
      await expect(store.insertKey({ ...k, id: 'other' })).rejects.toThrow();
      await store.close();
    });

    it('lists keys newest first, filtered by team and user, page by page', async () => {
      const store = await (await factory())();
      await store.insertTeam({ id: 't1', limits: null, models: null, createdAt: 1, updatedAt: 1 });
      const keys = [
        key({ team: 't1', createdAt: 10 }),
        key({ team: 't1', user: 'bob', createdAt: 20 }),
        key({ createdAt: 30 }),
      ];
      for (const k of keys) await store.insertKey(k);
      expect((await store.listKeys({ limit: 10 })).map((k) => k.id)).toEqual([
        keys[2]!.id,
        keys[1]!.id,
        keys[0]!.id,
      ]);
      expect((await store.listKeys({ team: 't1', limit: 10 })).map((k) => k.id)).toEqual([
        keys[1]!.id,
        keys[0]!.id,
      ]);
      expect((await store.listKeys({ user: 'bob', limit: 10 })).map((k) => k.id)).toEqual([keys[1]!.id]);
      const first = await store.listKeys({ limit: 2 });
      const second = await store.listKeys({ limit: 2, after: first[1]!.id });
      expect(second.map((k) => k.id)).toEqual([keys[0]!.id]);
      await store.close();
    });

    it('updates keys field by field and moves the change counter', async () => {
      const store = await (await factory())();
      const k = key();
      await store.insertKey(k);
      const before = await store.changeCount();
      const updated = await store.updateKey(
        k.id,
        { name: 'renamed', limits: { maxParallel: 3 }, models: null },
        5_000,
      );
      expect(updated).toMatchObject({
        name: 'renamed',
        limits: { maxParallel: 3 },
        models: null,
        updatedAt: 5_000,
      });
      expect(await store.changeCount()).toBeGreaterThan(before);
      expect(await store.updateKey('key_missing', { name: 'x' }, 1)).toBeUndefined();
      await store.markUsed(new Map([[k.id, 7_000]]));
      await store.markUsed(new Map([[k.id, 6_000]]));
      expect((await store.getKey(k.id))?.lastUsedAt).toBe(7_000);
      await store.close();
    });

    it('teams: insert once, update, refuse deleting one with active keys', async () => {
      const store = await (await factory())();
      const team = { id: 'research', limits: { tpm: 1000 }, models: ['llama'], createdAt: 1, updatedAt: 1 };
      expect(await store.insertTeam(team)).toBe(true);
      expect(await store.insertTeam(team)).toBe(false);
      expect(await store.getTeam('research')).toEqual(team);
      expect(await store.updateTeam('research', { limits: null }, 9)).toMatchObject({
        limits: null,
        models: ['llama'],
      });
      const k = key({ team: 'research' });
      await store.insertKey(k);
      expect(await store.activeKeyCount('research', 5)).toBe(1);
      expect(await store.deleteTeam('research', 5)).toBe('in_use');
      await store.updateKey(k.id, { revokedAt: 10 }, 10);
      expect(await store.deleteTeam('research', 11)).toBe('deleted');
      expect(await store.deleteTeam('research', 12)).toBe('missing');
      // An expired key no longer holds its team.
      await store.insertTeam({ ...team, id: 'short-lived' });
      await store.insertKey(key({ team: 'short-lived', expiresAt: 100 }));
      expect(await store.deleteTeam('short-lived', 99)).toBe('in_use');
      expect(await store.deleteTeam('short-lived', 100)).toBe('deleted');
      expect(await store.listTeams()).toEqual([]);
      await store.close();
    });

    it('runtime endpoints: insert once, replace, delete; each change moves the change counter', async () => {
      const store = await (await factory())();
      const spec = { name: 'gpu-b', url: 'https://b.example', weight: 2, models: ['llama'] };
      const seen = await store.changeCount();
      expect(await store.insertEndpoint({ name: 'gpu-b', spec, createdAt: 1, updatedAt: 1 })).toBe(true);
      expect(await store.insertEndpoint({ name: 'gpu-b', spec, createdAt: 2, updatedAt: 2 })).toBe(false);
      await store.insertEndpoint({
        name: 'gpu-a',
        spec: { ...spec, name: 'gpu-a' },
        createdAt: 3,
        updatedAt: 3,
      });
      expect(await store.changeCount()).toBe(seen + 2);
      expect(await store.updateEndpoint('gpu-b', { ...spec, weight: 0 }, 5)).toBe(true);
      expect(await store.updateEndpoint('missing', spec, 5)).toBe(false);
      expect(await store.listEndpoints()).toEqual([
        { name: 'gpu-b', spec: { ...spec, weight: 0 }, createdAt: 1, updatedAt: 5 },
        { name: 'gpu-a', spec: { ...spec, name: 'gpu-a' }, createdAt: 3, updatedAt: 3 },
      ]);
      expect(await store.deleteEndpoint('gpu-b')).toBe(true);
      expect(await store.deleteEndpoint('gpu-b')).toBe(false);
      expect((await store.listEndpoints()).map((e) => e.name)).toEqual(['gpu-a']);
      expect(await store.changeCount()).toBe(seen + 4);
      await store.close();
    });

    it('knows whether any key or team has limits', async () => {
      const store = await (await factory())();
      expect(await store.hasLimits()).toBe(false);
      await store.insertKey(key());
      expect(await store.hasLimits()).toBe(false);
      await store.insertTeam({ id: 'x', limits: { rpm: 1 }, models: null, createdAt: 1, updatedAt: 1 });
      expect(await store.hasLimits()).toBe(true);
      await store.close();
    });

    it('claims: one working key per identity, a new one once it expired or was revoked', async () => {
      const store = await (await factory())();
      const a = key({ identity: 'user@example.com', expiresAt: 10_000 });
      expect(await store.claimKey({ ...a, identity: 'user@example.com' }, 5_000)).toBe(true);
      const b = key({ identity: 'user@example.com', expiresAt: 20_000 });
      expect(await store.claimKey({ ...b, identity: 'user@example.com' }, 6_000)).toBe(false);
      expect(await store.getKey(b.id)).toBeUndefined();
      // a expired at 10 000.
      expect(await store.claimKey({ ...b, identity: 'user@example.com' }, 10_000)).toBe(true);
      await store.updateKey(b.id, { revokedAt: 11_000 }, 11_000);
      const c = key({ identity: 'user@example.com', expiresAt: 30_000 });
      expect(await store.claimKey({ ...c, identity: 'user@example.com' }, 12_000)).toBe(true);
      // Extending the key's expiry keeps the identity's claim on it.
      await store.updateKey(c.id, { expiresAt: 100_000 }, 13_000);
      const d = key({ identity: 'user@example.com', expiresAt: 200_000 });
      expect(await store.claimKey({ ...d, identity: 'user@example.com' }, 40_000)).toBe(false);
      await store.close();
    });

    it('usage ledger: records kept whole, listed newest first by page, summed and grouped', async () => {
      const store = await (await factory())();
      const day1 = Date.parse('2026-12-01T10:00:00Z');
      const day2 = Date.parse('2026-12-02T23:59:59Z');
      const records = [
        usage({ time: day1, metadata: { project: 'x' }, stream: true, estimated: true, ttftMs: null }),
        usage({ time: day1 + 1, model: 'qwen', cost: 0.5, cached: true }),
        usage({
          time: day2,
          keyId: 'key_b',
          team: null,
          user: 'bob',
          endpoint: null,
          status: 429,
          errorCode: 'rate_limit_exceeded',
          promptTokens: 0,
          completionTokens: 0,
          cost: 0,
        }),
      ];
      await store.insertUsage(records);
      await store.insertUsage([]);
      const page1 = await store.usageRecords({}, { limit: 2 });
      expect(page1.map((r) => r.record)).toEqual([records[2], records[1]]);
      const page2 = await store.usageRecords({}, { limit: 2, before: page1[1]!.cursor });
      expect(page2.map((r) => r.record)).toEqual([records[0]]);
      expect((await store.usageRecords({ keyId: 'key_b' }, { limit: 10 })).map((r) => r.record)).toEqual([
        records[2],
      ]);
      expect(await store.usageRecords({ from: day1 + 1, to: day2 }, { limit: 10 })).toHaveLength(1);

      const all = await store.usageSummary({}, undefined);
      expect(all.totals).toEqual({
        requests: 3,
        promptTokens: 20,
        completionTokens: 10,
        cost: 0.75,
        cacheHits: 1,
      });
      const byModel = await store.usageSummary({}, 'model');
      expect(byModel.groups).toEqual([
        { group: 'llama', requests: 2, promptTokens: 10, completionTokens: 5, cost: 0.25, cacheHits: 0 },
        { group: 'qwen', requests: 1, promptTokens: 10, completionTokens: 5, cost: 0.5, cacheHits: 1 },
      ]);
      const byDay = await store.usageSummary({}, 'day');
      expect(byDay.groups.map((g) => [g.group, g.requests])).toEqual([
        ['2026-12-01', 2],
        ['2026-12-02', 1],
      ]);
      expect((await store.usageSummary({ team: 'lab' }, 'key')).groups.map((g) => g.group)).toEqual([
        'key_a',
      ]);
      expect((await store.usageSummary({}, 'team')).groups.map((g) => g.group)).toEqual(['lab', null]);
      expect((await store.usageSummary({ model: 'none' }, undefined)).totals.requests).toBe(0);
      expect(await store.pruneUsage(day2)).toBe(2);
      expect((await store.usageSummary({}, undefined)).totals.requests).toBe(1);
      await store.close();
    });

    it('claims racing from two connections give one key', async () => {
      const open = await factory();
      const [store, other] = await Promise.all([open(), open()]);
      const claims = await Promise.all(
        Array.from({ length: 10 }, (_, i) => {
          const k = key({ identity: 'racer', expiresAt: 1e13 });
          return (i % 2 === 0 ? store : other).claimKey({ ...k, identity: 'racer' }, 1_000);
        }),
      );
      expect(claims.filter(Boolean)).toHaveLength(1);
      await store.close();
      await other.close();
    });

    it('two replicas opening the same new database at once migrate it once', async () => {
      const open = await factory();
      const opened = await Promise.all([open(), open(), open()]);
      const k = key();
      await opened[0].insertKey(k);
      expect(await opened[2].getKey(k.id)).toEqual(k);
      // The change made through one connection is seen by the others' counter.
      const seen = await opened[1].changeCount();
      await opened[0].updateKey(k.id, { name: 'x' }, 2);
      expect(await opened[1].changeCount()).toBe(seen + 1);
      for (const s of opened) await s.close();
    });
  });
}
