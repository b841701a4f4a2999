import { describe, expect, it } from 'vitest';
import { SessionAffinity } from '../../src/services/selector/session-affinity.js';

const ep = (name: string, inFlight = 0, weight = 1) => ({ name, weight, inFlight });

describe('SessionAffinity', () => {
  it('sends a session to the same endpoint every time', () => {
    const a = new SessionAffinity();
    const pool = [ep('a'), ep('b'), ep('c')];
    const first = a.choose('session-1', pool, 1.25)!.name;
    for (let i = 0; i < 50; i++) expect(a.choose('session-1', pool, 1.25)!.name).toBe(first);
  });

  it('spreads many sessions over the endpoints roughly by weight', () => {
    const a = new SessionAffinity();
    const pool = [ep('a', 0, 1), ep('b', 0, 1), ep('c', 0, 2)];
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 4000; i++) counts[a.choose(`user-${i}`, pool, 1.25)!.name]!++;
    expect(counts.c! / 4000).toBeGreaterThan(0.4);
    expect(counts.c! / 4000).toBeLessThan(0.6);
    expect(counts.a! / 4000).toBeGreaterThan(0.17);
    expect(counts.b! / 4000).toBeGreaterThan(0.17);
  });

  it('bounded load: an over-full home makes this request spill, the session keeps its home', () => {
    const a = new SessionAffinity();
    const home = a.choose('hot', [ep('a'), ep('b'), ep('c')], 1.25)!.name;
    // Home carries 10 requests, the others none: capacity is ceil(1.25 * 11 / 3) = 5.
    const loaded = ['a', 'b', 'c'].map((n) => ep(n, n === home ? 10 : 0));
    const spill = a.choose('hot', loaded, 1.25)!.name;
    expect(spill).not.toBe(home);
    expect(a.placementOf('hot')).toBe(home);
    expect(a.choose('hot', [ep('a'), ep('b'), ep('c')], 1.25)!.name).toBe(home);
  });

  it('a session whose endpoint is gone moves, and stays on its new endpoint when the old one returns', () => {
    const a = new SessionAffinity();
    const all = [ep('a'), ep('b'), ep('c')];
    const home = a.choose('s', all, 1.25)!.name;
    const moved = a.choose(
      's',
      all.filter((e) => e.name !== home),
      1.25,
    )!.name;
    expect(moved).not.toBe(home);
    expect(a.choose('s', all, 1.25)!.name).toBe(moved);
  });

  it('a removed endpoint only moves its own sessions (consistent hashing)', () => {
    const a = new SessionAffinity();
    const b = new SessionAffinity();
    const four = [ep('a'), ep('b'), ep('c'), ep('d')];
    const three = four.filter((e) => e.name !== 'd');
    let moved = 0;
    for (let i = 0; i < 1000; i++) {
      const before = a.choose(`k${i}`, four, 10)!.name;
      const after = b.choose(`k${i}`, three, 10)!.name;
      if (before !== 'd' && before !== after) moved++;
    }
    expect(moved).toBe(0);
  });

  it('keeps at most maxSessions placements (least recently used go first)', () => {
    const a = new SessionAffinity(2);
    const pool = [ep('a'), ep('b')];
    a.choose('one', pool, 1.25);
    a.choose('two', pool, 1.25);
    a.choose('one', pool, 1.25);
    a.choose('three', pool, 1.25);
    expect(a.placementOf('two')).toBeUndefined();
    expect(a.placementOf('one')).toBeDefined();
    expect(a.placementOf('three')).toBeDefined();
  });
});
