import { describe, expect, it } from 'vitest';
import { chat } from '../helpers/http.js';
import { seededRandom } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();

async function threeEndpoints(env: Record<string, string> = {}, now?: () => number) {
  const ups = await Promise.all(['a', 'b', 'c'].map((name) => bed.upstream(name)));
  const gw = await bed.gateway({
    endpoints: ups.map((u) => ({ url: u.url, name: u.name })),
    env: { AFFINITY_HEADER: 'x-session-id', ...env },
    random: seededRandom(1),
    now,
  });
  return { ups, gw };
}

describe('session affinity', () => {
  it('keeps a session (x-session-id) on one endpoint while sessions spread over all', async () => {
    const { gw } = await threeEndpoints();
    const seen = new Map<string, Set<string>>();
    for (let i = 0; i < 60; i++) {
      const session = `chat-${i % 12}`;
      const res = await chat(gw.url, gw.auth, { headers: { 'x-session-id': session } });
      const set = seen.get(session) ?? new Set<string>();
      set.add(String(res.headers['x-gateway-endpoint']));
      seen.set(session, set);
    }
    for (const endpoints of seen.values()) expect(endpoints.size).toBe(1);
    const used = new Set([...seen.values()].flatMap((s) => [...s]));
    expect(used.size).toBeGreaterThanOrEqual(2);
  });

  it('uses the body’s user field when there is no header', async () => {
    const { gw } = await threeEndpoints();
    const body = { model: 'test-model', user: 'alice', messages: [{ role: 'user', content: 'x' }] };
    const first = (await chat(gw.url, gw.auth, { body })).headers['x-gateway-endpoint'];
    for (let i = 0; i < 10; i++)
      expect((await chat(gw.url, gw.auth, { body })).headers['x-gateway-endpoint']).toBe(first);
  });

  it('an ejected endpoint’s sessions move and stay on their new endpoint after it recovers', async () => {
    let now = 1_000_000;
    const { ups, gw } = await threeEndpoints({}, () => now);
    const headers = { 'x-session-id': 'sticky' };
    const home = String((await chat(gw.url, gw.auth, { headers })).headers['x-gateway-endpoint']);
    const homeUpstream = ups.find((u) => u.name === home)!;
    homeUpstream.script(...Array.from({ length: 3 }, () => ({ type: 'status' as const, status: 503 })));
    for (let i = 0; i < 3; i++) await chat(gw.url, gw.auth, { headers });
    expect(gw.gateway.registry.health.get(home).state(now)).toBe('ejected');
    const moved = String((await chat(gw.url, gw.auth, { headers })).headers['x-gateway-endpoint']);
    expect(moved).not.toBe(home);

    now += 60_000;
    expect(gw.gateway.registry.health.get(home).state(now)).toBe('half-open');
    for (let i = 0; i < 5; i++) {
      expect((await chat(gw.url, gw.auth, { headers })).headers['x-gateway-endpoint']).toBe(moved);
    }
  });

  it('bounded load: concurrent requests of one hot session spill over instead of piling up', async () => {
    const { ups, gw } = await threeEndpoints();
    for (const u of ups) u.defaultBehavior = { type: 'answer', delayMs: 300 };
    const headers = { 'x-session-id': 'hot' };
    const pending = [];
    for (let i = 0; i < 9; i++) {
      pending.push(chat(gw.url, gw.auth, { headers }));
      const before = ups.map((u) => u.requests.length).reduce((x, y) => x + y, 0);
      await Promise.race(ups.map((u) => u.waitForRequest(u.requests.length + 1)));
      expect(ups.map((u) => u.requests.length).reduce((x, y) => x + y, 0)).toBe(before + 1);
    }
    const results = await Promise.all(pending);
    const counts = new Map<string, number>();
    for (const r of results)
      counts.set(
        String(r.headers['x-gateway-endpoint']),
        (counts.get(String(r.headers['x-gateway-endpoint'])) ?? 0) + 1,
      );
    // Capacity with factor 1.25 never lets one endpoint take much more than its share of 9.
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(5);
    expect(counts.size).toBeGreaterThanOrEqual(2);
  });

  it('is off unless configured', async () => {
    const ups = await Promise.all(['a', 'b'].map((name) => bed.upstream(name)));
    const gw = await bed.gateway({
      endpoints: ups.map((u) => ({ url: u.url, name: u.name })),
      random: seededRandom(3),
    });
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++)
      seen.add(
        String(
          (await chat(gw.url, gw.auth, { headers: { 'x-session-id': 'same' } })).headers[
            'x-gateway-endpoint'
          ],
        ),
      );
    expect(seen.size).toBe(2);
  });
});
