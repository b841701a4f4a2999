import { describe, expect, it } from 'vitest';
import { orderByLeastOutstanding, orderByPriorityAndWeight } from '../../src/services/selector.js';
import { seededRandom } from '../helpers/start-gateway.js';

const ep = (name: string, priority: number, weight: number) => ({ name, priority, weight });

describe('orderByPriorityAndWeight', () => {
  it('orders whole tiers by priority, lowest number first', () => {
    const order = orderByPriorityAndWeight([ep('c', 3, 1), ep('a', 1, 1), ep('b', 2, 5)], seededRandom(1));
    expect(order.map((e) => e.name)).toEqual(['a', 'b', 'c']);
  });

  it('never picks a weight-0 (drained) endpoint', () => {
    const random = seededRandom(7);
    for (let i = 0; i < 200; i++) {
      const order = orderByPriorityAndWeight([ep('drained', 1, 0), ep('live', 1, 1)], random);
      expect(order.map((e) => e.name)).toEqual(['live']);
    }
  });

  it('splits first picks by weight within a tier (3:1 within a few points over 4000 picks)', () => {
    const random = seededRandom(42);
    const counts = { heavy: 0, light: 0 };
    for (let i = 0; i < 4000; i++) {
      const first = orderByPriorityAndWeight([ep('heavy', 1, 3), ep('light', 1, 1)], random)[0]!;
      counts[first.name as 'heavy' | 'light']++;
    }
    expect(counts.heavy / 4000).toBeGreaterThan(0.72);
    expect(counts.heavy / 4000).toBeLessThan(0.78);
  });

  it('returns a full permutation of the tier (every endpoint appears once, as failover order)', () => {
    const items = [ep('a', 1, 1), ep('b', 1, 2), ep('c', 1, 3), ep('d', 2, 1)];
    const order = orderByPriorityAndWeight(items, seededRandom(3));
    expect(order).toHaveLength(4);
    expect(new Set(order.map((e) => e.name))).toEqual(new Set(['a', 'b', 'c', 'd']));
    expect(order[3]!.name).toBe('d');
  });

  it('is deterministic for a given random source and handles random() near 1', () => {
    const items = [ep('a', 1, 1), ep('b', 1, 1)];
    expect(orderByPriorityAndWeight(items, () => 0).map((e) => e.name)).toEqual(['a', 'b']);
    expect(orderByPriorityAndWeight(items, () => 0.999999).map((e) => e.name)).toEqual(['b', 'a']);
  });

  it('returns nothing for an empty or fully drained pool', () => {
    expect(orderByPriorityAndWeight([], Math.random)).toEqual([]);
    expect(orderByPriorityAndWeight([ep('a', 1, 0)], Math.random)).toEqual([]);
  });
});

describe('orderByLeastOutstanding', () => {
  const lo = (name: string, priority: number, weight: number, inFlight: number, ewmaTtfbMs?: number) => ({
    name,
    priority,
    weight,
    inFlight,
    ewmaTtfbMs,
  });

  it('puts the endpoint with fewer requests in flight first (two endpoints: always compared)', () => {
    const random = seededRandom(9);
    for (let i = 0; i < 50; i++) {
      const order = orderByLeastOutstanding([lo('busy', 1, 1, 10), lo('idle', 1, 1, 0)], random);
      expect(order.map((e) => e.name)).toEqual(['idle', 'busy']);
    }
  });

  it('scales load by weight and breaks ties on EWMA time to first byte', () => {
    const random = seededRandom(4);
    // 3 in flight on weight 4 is less load than 1 in flight on weight 1.
    expect(orderByLeastOutstanding([lo('small', 1, 1, 1), lo('big', 1, 4, 3)], random)[0]!.name).toBe('big');
    expect(
      orderByLeastOutstanding([lo('slow', 1, 1, 0, 900), lo('fast', 1, 1, 0, 100)], random)[0]!.name,
    ).toBe('fast');
  });

  it('keeps priority tiers and skips drained endpoints', () => {
    const order = orderByLeastOutstanding(
      [lo('backup', 2, 1, 0), lo('primary', 1, 1, 50), lo('drained', 1, 0, 0)],
      seededRandom(1),
    );
    expect(order.map((e) => e.name)).toEqual(['primary', 'backup']);
  });

  it('never puts the most loaded of three first', () => {
    const random = seededRandom(12);
    for (let i = 0; i < 200; i++) {
      const order = orderByLeastOutstanding([lo('a', 1, 1, 0), lo('b', 1, 1, 5), lo('c', 1, 1, 9)], random);
      expect(order[0]!.name).not.toBe('c');
      expect(order).toHaveLength(3);
    }
  });
});
