import { describe, expect, it } from 'vitest';
import { pickByLeastOutstanding, pickByPriorityAndWeight } from '../../src/services/selector/selector.js';
import { seededRandom } from '../helpers/start-gateway.js';

const ep = (name: string, priority: number, weight: number) => ({
  name,
  config: { priority, weight },
  health: { inFlight: 0, ewmaTtfbMs: undefined },
});

describe('pickByPriorityAndWeight', () => {
  it('picks from the lowest priority number first', () => {
    const random = seededRandom(1);
    for (let i = 0; i < 100; i++) {
      expect(pickByPriorityAndWeight([ep('c', 3, 1), ep('a', 1, 1), ep('b', 2, 5)], random)!.name).toBe('a');
    }
  });

  it('goes to the next tier only when a whole tier is drained', () => {
    const random = seededRandom(2);
    const items = [ep('a', 1, 0), ep('b', 1, 0), ep('c', 2, 1)];
    for (let i = 0; i < 50; i++) expect(pickByPriorityAndWeight(items, random)!.name).toBe('c');
  });

  it('never picks a weight-0 (drained) endpoint', () => {
    const random = seededRandom(7);
    for (let i = 0; i < 200; i++) {
      expect(pickByPriorityAndWeight([ep('drained', 1, 0), ep('live', 1, 1)], random)!.name).toBe('live');
    }
  });

  it('splits picks by weight within a tier (3:1 within a few points over 4000 picks)', () => {
    const random = seededRandom(42);
    const counts = { heavy: 0, light: 0 };
    for (let i = 0; i < 4000; i++) {
      const picked = pickByPriorityAndWeight([ep('heavy', 1, 3), ep('light', 1, 1)], random)!;
      counts[picked.name as 'heavy' | 'light']++;
    }
    expect(counts.heavy / 4000).toBeGreaterThan(0.72);
    expect(counts.heavy / 4000).toBeLessThan(0.78);
  });

  it('splits three ways by weight (1:2:3)', () => {
    const random = seededRandom(5);
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    const items = [ep('a', 1, 1), ep('b', 1, 2), ep('c', 1, 3)];
    for (let i = 0; i < 6000; i++) counts[pickByPriorityAndWeight(items, random)!.name]!++;
    expect(counts.a! / 6000).toBeCloseTo(1 / 6, 1);
    expect(counts.b! / 6000).toBeCloseTo(2 / 6, 1);
    expect(counts.c! / 6000).toBeCloseTo(3 / 6, 1);
  });

  it('is deterministic for a given random source and handles random() near 1', () => {
    const items = [ep('a', 1, 1), ep('b', 1, 1)];
    expect(pickByPriorityAndWeight(items, () => 0)!.name).toBe('a');
    expect(pickByPriorityAndWeight(items, () => 0.999999)!.name).toBe('b');
  });

  it('returns nothing for an empty or fully drained pool', () => {
    expect(pickByPriorityAndWeight([], Math.random)).toBeUndefined();
    expect(pickByPriorityAndWeight([ep('a', 1, 0)], Math.random)).toBeUndefined();
  });

  it('picks only among the eligible endpoints, their best tier first', () => {
    const random = seededRandom(3);
    const items = [ep('a', 1, 1), ep('b', 1, 1), ep('c', 2, 1)];
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++)
      seen.add(pickByPriorityAndWeight(items, random, (e) => e.name !== 'a')!.name);
    expect(seen).toEqual(new Set(['b']));
    expect(pickByPriorityAndWeight(items, random, (e) => e.name === 'c')!.name).toBe('c');
    expect(pickByPriorityAndWeight(items, random, () => false)).toBeUndefined();
  });

  it('draws no random number when there is nothing to choose', () => {
    let draws = 0;
    const random = () => {
      draws++;
      return 0.5;
    };
    expect(pickByPriorityAndWeight([ep('only', 1, 1), ep('backup', 2, 1)], random)!.name).toBe('only');
    expect(draws).toBe(0);
  });
});

describe('pickByLeastOutstanding', () => {
  const lo = (name: string, priority: number, weight: number, inFlight: number, ewmaTtfbMs?: number) => ({
    name,
    config: { priority, weight },
    health: { inFlight, ewmaTtfbMs },
  });

  it('picks the endpoint with fewer requests in flight (two endpoints: always compared)', () => {
    const random = seededRandom(9);
    for (let i = 0; i < 50; i++) {
      expect(pickByLeastOutstanding([lo('busy', 1, 1, 10), lo('idle', 1, 1, 0)], random)!.name).toBe('idle');
    }
  });

  it('scales load by weight and breaks ties on EWMA time to first byte', () => {
    const random = seededRandom(4);
    // 3 in flight on weight 4 is less load than 1 in flight on weight 1.
    expect(pickByLeastOutstanding([lo('small', 1, 1, 1), lo('big', 1, 4, 3)], random)!.name).toBe('big');
    expect(pickByLeastOutstanding([lo('slow', 1, 1, 0, 900), lo('fast', 1, 1, 0, 100)], random)!.name).toBe(
      'fast',
    );
  });

  it('keeps priority tiers and skips drained endpoints', () => {
    const random = seededRandom(1);
    const items = [lo('backup', 2, 1, 0), lo('primary', 1, 1, 50), lo('drained', 1, 0, 0)];
    for (let i = 0; i < 50; i++) expect(pickByLeastOutstanding(items, random)!.name).toBe('primary');
  });

  it('never picks the most loaded of three, and picks each of the other two', () => {
    const random = seededRandom(12);
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const picked = pickByLeastOutstanding([lo('a', 1, 1, 0), lo('b', 1, 1, 5), lo('c', 1, 1, 9)], random)!;
      expect(picked.name).not.toBe('c');
      seen.add(picked.name);
    }
    expect(seen).toEqual(new Set(['a', 'b']));
  });

  it('picks only among the eligible endpoints', () => {
    const random = seededRandom(6);
    const items = [lo('idle', 1, 1, 0), lo('busy', 1, 1, 9), lo('other', 1, 1, 5)];
    for (let i = 0; i < 50; i++) {
      expect(pickByLeastOutstanding(items, random, (e) => e.name !== 'idle')!.name).toBe('other');
    }
  });

  it('returns nothing for an empty or fully drained pool', () => {
    expect(pickByLeastOutstanding([], Math.random)).toBeUndefined();
    expect(pickByLeastOutstanding([lo('a', 1, 0, 0)], Math.random)).toBeUndefined();
  });
});
