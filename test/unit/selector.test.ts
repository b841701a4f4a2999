import { describe, expect, it } from 'vitest';
import { orderByPriorityAndWeight } from '../../src/services/selector.js';
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
