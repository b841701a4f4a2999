import { describe, expect, it } from 'vitest';
import { refusedUrl, type FakeUpstream } from '../helpers/fake-upstream.js';
import { chat } from '../helpers/http.js';
import { seededRandom } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();
const start = (...names: string[]): Promise<FakeUpstream[]> => Promise.all(names.map((n) => bed.upstream(n)));

describe('selection through the gateway', () => {
  it('splits traffic 3:1 by weight within a tier (seeded, 400 requests)', async () => {
    const [heavy, light] = await start('heavy', 'light');
    const gw = await bed.gateway({
      endpoints: [
        { url: heavy!.url, name: 'heavy', weight: 3 },
        { url: light!.url, name: 'light', weight: 1 },
      ],
      random: seededRandom(2026),
    });
    const counts: Record<string, number> = { heavy: 0, light: 0 };
    for (let i = 0; i < 400; i++) {
      const res = await chat(gw.url, gw.auth);
      counts[String(res.headers['x-gateway-endpoint'])]!++;
    }
    expect(counts.heavy! + counts.light!).toBe(400);
    expect(counts.heavy! / 400).toBeGreaterThan(0.7);
    expect(counts.heavy! / 400).toBeLessThan(0.8);
    expect(heavy!.requests.length).toBe(counts.heavy);
  });

  it('prefers the lowest priority number while it is healthy', async () => {
    const [p1, p2] = await start('p1', 'p2');
    const gw = await bed.gateway({
      endpoints: [
        { url: p2!.url, name: 'p2', priority: 2, weight: 100 },
        { url: p1!.url, name: 'p1', priority: 1, weight: 1 },
      ],
      random: seededRandom(1),
    });
    for (let i = 0; i < 20; i++)
      expect((await chat(gw.url, gw.auth)).headers['x-gateway-endpoint']).toBe('p1');
    expect(p2!.requests).toHaveLength(0);
  });

  it('weight 0 drains an endpoint: it never gets traffic (the original gateway treated 0 as 1)', async () => {
    const [drained, live] = await start('drained', 'live');
    const gw = await bed.gateway({
      endpoints: [
        { url: drained!.url, name: 'drained', weight: 0 },
        { url: live!.url, name: 'live', weight: 1 },
      ],
      random: seededRandom(5),
    });
    for (let i = 0; i < 30; i++) await chat(gw.url, gw.auth);
    expect(drained!.requests).toHaveLength(0);
    expect(live!.requests).toHaveLength(30);
  });

  it('an all-drained pool answers 503, not 404', async () => {
    const [drained] = await start('drained');
    const gw = await bed.gateway({ endpoints: [{ url: drained!.url, name: 'drained', weight: 0 }] });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(503);
    expect(res.json.error.code).toBe('no_endpoint_available');
  });

  it('only endpoints that serve the model are candidates', async () => {
    const [a, b] = await start('a', 'b');
    a!.models = ['llama'];
    b!.models = ['qwen'];
    const gw = await bed.gateway({
      endpoints: [
        { url: a!.url, name: 'a' },
        { url: b!.url, name: 'b' },
      ],
    });
    for (let i = 0; i < 10; i++) {
      const res = await chat(gw.url, gw.auth, {
        body: { model: 'qwen', messages: [{ role: 'user', content: 'x' }] },
      });
      expect(res.headers['x-gateway-endpoint']).toBe('b');
    }
    expect(a!.requests).toHaveLength(0);
  });
});

describe('passive health: ejection and half-open recovery', () => {
  it('ejects a failing primary after 3 failures, skips it, then sends one trial when the ejection ends', async () => {
    const [primary, backup] = await start('primary', 'backup');
    for (let i = 0; i < 3; i++) primary!.script({ type: 'status', status: 503 });
    let now = 1_000_000;
    const gw = await bed.gateway({
      endpoints: [
        { url: primary!.url, name: 'primary', priority: 1 },
        { url: backup!.url, name: 'backup', priority: 2 },
      ],
      now: () => now,
    });
    for (let i = 0; i < 3; i++) {
      const res = await chat(gw.url, gw.auth);
      expect(res.headers['x-gateway-attempts']).toBe('2');
    }
    const health = gw.gateway.registry.health.get('primary');
    expect(health.state(now)).toBe('ejected');
    // Ejected: requests go straight to the backup, costing the primary nothing.
    const skipped = await chat(gw.url, gw.auth);
    expect(skipped.headers['x-gateway-endpoint']).toBe('backup');
    expect(skipped.headers['x-gateway-attempts']).toBe('1');
    expect(primary!.requests).toHaveLength(3);

    // The primary is still listed in /v1/models and readiness stays up thanks to the backup.
    const ready = await fetch(`${gw.url}/health/readiness`);
    expect(ready.status).toBe(200);

    now += 10_000;
    expect(health.state(now)).toBe('half-open');
    const trial = await chat(gw.url, gw.auth);
    expect(trial.headers['x-gateway-endpoint']).toBe('primary');
    expect(health.state(now)).toBe('healthy');
    // Both changes are logged, with the endpoint's name.
    expect(gw.logs.find((l) => l.msg === 'endpoint ejected')).toMatchObject({
      endpoint: 'primary',
      ejectedForMs: 10_000,
    });
    expect(gw.logs.find((l) => l.msg === 'endpoint restored')).toMatchObject({ endpoint: 'primary' });
  });

  it('the only endpoint of a model being ejected yields 503 with Retry-After until it recovers', async () => {
    const [a, b] = await start('a', 'b');
    a!.models = ['solo'];
    b!.models = ['other'];
    for (let i = 0; i < 3; i++) a!.script({ type: 'status', status: 500 });
    let now = 5_000_000;
    const gw = await bed.gateway({
      endpoints: [
        { url: a!.url, name: 'a' },
        { url: b!.url, name: 'b' },
      ],
      env: { MAX_ATTEMPTS: '1' },
      now: () => now,
    });
    const body = { model: 'solo', messages: [{ role: 'user', content: 'x' }] };
    for (let i = 0; i < 3; i++) expect((await chat(gw.url, gw.auth, { body })).status).toBe(502);
    const res = await chat(gw.url, gw.auth, { body });
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('10');
    now += 10_000;
    expect((await chat(gw.url, gw.auth, { body })).status).toBe(200);
  });

  it('a refused endpoint among healthy ones stops costing anything once ejected', async () => {
    const [b] = await start('b');
    const gw = await bed.gateway({
      endpoints: [
        { url: await refusedUrl(), name: 'dead', priority: 1, models: ['test-model'] },
        { url: b!.url, name: 'b', priority: 2 },
      ],
    });
    // The start-up probe already counted one failure: two requests pay for the dead endpoint, not three.
    expect(gw.gateway.registry.health.get('dead').consecutiveFailures).toBe(1);
    const attempts: string[] = [];
    for (let i = 0; i < 6; i++)
      attempts.push(String((await chat(gw.url, gw.auth)).headers['x-gateway-attempts']));
    expect(attempts).toEqual(['2', '2', '1', '1', '1', '1']);
  });
});

describe('maxConcurrent', () => {
  it('a full endpoint is skipped and its tier spills to the next', async () => {
    const [small, big] = await start('small', 'big');
    small!.script({ type: 'answer', delayMs: 200 });
    const gw = await bed.gateway({
      endpoints: [
        { url: small!.url, name: 'small', priority: 1, maxConcurrent: 1 },
        { url: big!.url, name: 'big', priority: 2 },
      ],
    });
    const first = chat(gw.url, gw.auth);
    await small!.waitForRequest(1);
    const second = await chat(gw.url, gw.auth);
    expect(second.headers['x-gateway-endpoint']).toBe('big');
    expect((await first).headers['x-gateway-endpoint']).toBe('small');
  });
});

describe('ROUTING_STRATEGY=least-outstanding', () => {
  it('steers new requests away from an endpoint whose requests pile up', async () => {
    const [slow, fast] = await start('slow', 'fast');
    slow!.defaultBehavior = { type: 'answer', delayMs: 400 };
    const gw = await bed.gateway({
      endpoints: [
        { url: slow!.url, name: 'slow' },
        { url: fast!.url, name: 'fast' },
      ],
      env: { ROUTING_STRATEGY: 'least-outstanding' },
      random: seededRandom(8),
    });
    const pending = [];
    for (let i = 0; i < 10; i++) {
      pending.push(chat(gw.url, gw.auth));
      // Each request is in flight before the next is routed.
      await Promise.race([
        slow!.waitForRequest(slow!.requests.length + 1),
        fast!.waitForRequest(fast!.requests.length + 1),
      ]);
    }
    const results = await Promise.all(pending);
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(slow!.requests.length).toBeLessThanOrEqual(1);
    expect(fast!.requests.length).toBeGreaterThanOrEqual(9);
  });
});
