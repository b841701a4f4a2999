import { describe, expect, it, vi } from 'vitest';
import { refusedUrl } from '../helpers/fake-upstream.js';
import { chat } from '../helpers/http.js';
import { CLIENT_KEY, type TestGateway } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();
const ADMIN_KEY = 'sk-admin-status-key-42';
const admin = { authorization: `Bearer ${ADMIN_KEY}` };

async function status(gw: TestGateway): Promise<{ status: number; text: string; json: any }> {
  const res = await fetch(`${gw.url}/api/v1/providers/status`, { headers: admin });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) };
}

const byName = (json: any, name: string) => json.endpoints.find((e: any) => e.name === name);

describe('GET /api/v1/providers/status', () => {
  it('is off without ADMIN_API_KEY and never opened by a client key', async () => {
    const a = await bed.upstream('a');
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const off = await fetch(`${gw.url}/api/v1/providers/status`, { headers: gw.auth });
    expect(off.status).toBe(404);

    const gw2 = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a' }],
      env: { ADMIN_API_KEY: ADMIN_KEY },
    });
    const client = await fetch(`${gw2.url}/api/v1/providers/status`, { headers: gw2.auth });
    expect(client.status).toBe(401);
    const anonymous = await fetch(`${gw2.url}/api/v1/providers/status`);
    expect(anonymous.status).toBe(401);
    // And the admin key is not a client key.
    const v1 = await fetch(`${gw2.url}/v1/models`, { headers: admin });
    expect(v1.status).toBe(401);
  });

  it('shows each endpoint’s state, load, latency, error ratio, models and last error, never a key', async () => {
    const a = await bed.upstream('a');
    const b = await bed.upstream('b', { type: 'status', status: 500 });
    const drained = await bed.upstream('drained');
    const gw = await bed.gateway({
      endpoints: [
        {
          url: a.url,
          name: 'a',
          apiKey: 'sk-upstream-a-secret',
          priority: 1,
        },
        { url: b.url, name: 'b', apiKey: 'sk-upstream-b-secret', priority: 0 },
        { url: drained.url, name: 'drained', weight: 0 },
      ],
      env: { ADMIN_API_KEY: ADMIN_KEY },
    });
    for (let i = 0; i < 3; i++) expect((await chat(gw.url, gw.auth)).status).toBe(200);
    const { status: code, text, json } = await status(gw);
    expect(code).toBe(200);
    for (const secret of ['sk-upstream-a-secret', 'sk-upstream-b-secret', ADMIN_KEY, CLIENT_KEY]) {
      expect(text).not.toContain(secret);
    }
    const sa = byName(json, 'a');
    expect(sa).toMatchObject({
      state: 'healthy',
      inFlight: 0,
      models: ['test-model'],
      priority: 1,
      weight: 1,
    });
    expect(sa.url).toBe(a.url);
    expect(sa.ewmaTtfbMs).toBeTypeOf('number');
    expect(sa.ewmaLatencyMs).toBeTypeOf('number');
    const sb = byName(json, 'b');
    // Priority 0: tried first each time; failed once, then answered twice.
    expect(sb.errorRatio).toBe(0.333);
    expect(sb.lastError).toMatchObject({ kind: 'server-error' });
    expect(sb.lastError.message).toMatch(/HTTP 500/);
    expect(byName(json, 'drained').state).toBe('draining');
    expect(json.ready).toBe(true);
  });

  it('shows requests in flight, ejections with their end, and 429 cool-downs', async () => {
    const slow = await bed.upstream('slow', { type: 'hang' });
    const limited = await bed.upstream('limited', {
      type: 'status',
      status: 429,
      headers: { 'retry-after': '20' },
    });
    let now = Date.parse('2026-11-23T12:00:00Z');
    const gw = await bed.gateway({
      endpoints: [
        { url: slow.url, name: 'slow', priority: 1, models: ['slow-model'] },
        { url: limited.url, name: 'limited', priority: 1, models: ['limited-model'] },
        { url: await refusedUrl(), name: 'dead', models: ['dead-model'] },
      ],
      env: { ADMIN_API_KEY: ADMIN_KEY, MAX_ATTEMPTS: '1' },
      now: () => now,
    });
    const ask = (model: string) =>
      chat(gw.url, gw.auth, { body: { model, messages: [{ role: 'user', content: 'x' }] } });
    const hanging = ask('slow-model').catch(() => undefined);
    await slow.waitForRequest(1);
    await ask('limited-model');
    // The start-up probe counted one failure; two failed requests make three.
    await ask('dead-model');
    await ask('dead-model');

    const { json } = await status(gw);
    expect(byName(json, 'slow').inFlight).toBe(1);
    expect(byName(json, 'limited')).toMatchObject({
      state: 'cooling-down',
      coolingDownUntil: new Date(now + 20_000).toISOString(),
    });
    const dead = byName(json, 'dead');
    expect(dead.state).toBe('ejected');
    expect(dead.ejectedUntil).toBe(new Date(now + 10_000).toISOString());
    expect(dead.probe.ok).toBe(false);
    expect(dead.lastError.message).toMatch(/refused/);

    now += 10_000;
    expect(byName((await status(gw)).json, 'dead').state).toBe('half-open');
    await gw.gateway.shutdown(0);
    await hanging;
  });
});

describe('active probes', () => {
  it('take a dead endpoint out before any client request pays for it, and bring it back', async () => {
    const b = await bed.upstream('b');
    const dead = await refusedUrl();
    const gw = await bed.gateway({
      endpoints: [
        { url: dead, name: 'dead', priority: 1, models: ['test-model'] },
        { url: b.url, name: 'b', priority: 2 },
      ],
    });
    await gw.gateway.discovery.refresh();
    await gw.gateway.discovery.refresh();
    const health = gw.gateway.registry.health.get('dead');
    expect(health.state(Date.now())).toBe('ejected');
    const res = await chat(gw.url, gw.auth);
    expect(res.headers['x-gateway-endpoint']).toBe('b');
    expect(res.headers['x-gateway-attempts']).toBe('1');

    // The endpoint comes back: the next probe makes it half-open at once, the next request is its trial.
    const revived = await bed.upstream({ name: 'dead', port: Number(new URL(dead).port) });
    await gw.gateway.discovery.refresh();
    expect(health.state(Date.now())).toBe('half-open');
    const trial = await chat(gw.url, gw.auth);
    expect(trial.headers['x-gateway-endpoint']).toBe('dead');
    expect(revived.requests).toHaveLength(1);
    expect(health.state(Date.now())).toBe('healthy');
  });

  it('unwell endpoints are probed on the fast probe interval, healthy ones on the discovery interval', async () => {
    const healthy = await bed.upstream({ name: 'healthy', models: ['m'] });
    const gw = await bed.gateway({
      endpoints: [
        { url: healthy.url, name: 'healthy' },
        { url: await refusedUrl(), name: 'dead' },
      ],
      env: { HEALTH_PROBE_INTERVAL_MS: '25', DISCOVERY_INTERVAL_MS: '3600000' },
    });
    const dead = gw.gateway.registry.health.get('dead');
    const firstProbe = dead.lastProbeAt!;
    await vi.waitFor(() => expect(dead.lastProbeAt).toBeGreaterThan(firstProbe), {
      timeout: 2000,
      interval: 10,
    });
    expect(healthy.modelRequests).toHaveLength(1);
  });
});

describe('503 when the pool is exhausted', () => {
  it('carries a Retry-After equal to the soonest recovery', async () => {
    const a = await bed.upstream('a', { type: 'status', status: 429, headers: { 'retry-after': '40' } });
    const b = await bed.upstream('b', { type: 'status', status: 429, headers: { 'retry-after': '25' } });
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a' },
        { url: b.url, name: 'b' },
      ],
    });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('25');
  });
});

describe('GET /api/v1/runtime', () => {
  it('shows memory and event-loop resources to the admin key only', async () => {
    const a = await bed.upstream('a');
    const gw = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a' }],
      env: { ADMIN_API_KEY: ADMIN_KEY },
    });
    expect((await fetch(`${gw.url}/api/v1/runtime`, { headers: gw.auth })).status).toBe(401);
    const res = await fetch(`${gw.url}/api/v1/runtime`, { headers: admin });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      memoryMb: { rss: number };
      activeResources: Record<string, number>;
      inFlight: number;
    };
    expect(body.memoryMb.rss).toBeGreaterThan(10);
    expect(Object.keys(body.activeResources).length).toBeGreaterThan(0);
    expect(body.inFlight).toBe(0);
  });
});
