import { describe, expect, it, vi } from 'vitest';
import { refusedUrl } from '../helpers/fake-upstream.js';
import { chat } from '../helpers/http.js';
import type { TestGateway } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();
const start = (name: string, models: string[], port?: number) => bed.upstream({ name, models, port });

const body = (model: string) => ({ model, messages: [{ role: 'user', content: 'x' }] });

async function modelIds(g: TestGateway): Promise<string[]> {
  const res = await fetch(`${g.url}/v1/models`, { headers: g.auth });
  return ((await res.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id);
}

describe('model discovery', () => {
  it('lists the union of all endpoints’ models', async () => {
    const a = await start('a', ['llama', 'qwen']);
    const b = await start('b', ['qwen', 'mistral']);
    const gw = await bed.gateway({ endpoints: [{ url: a.url }, { url: b.url }] });
    expect(await modelIds(gw)).toEqual(['llama', 'qwen', 'mistral']);
    expect(a.modelRequests[0]!.headers.authorization).toBeUndefined();
  });

  it('GET /v1/models waits for the first discovery round: never an empty list while it is pending', async () => {
    const a = await start('a', ['llama']);
    a.modelsBehavior = {
      type: 'json',
      delayMs: 200,
      body: { object: 'list', data: [{ id: 'llama', object: 'model' }] },
    };
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }], waitForDiscovery: false });
    expect(await modelIds(gw)).toEqual(['llama']);
    const one = await fetch(`${gw.url}/v1/models/llama`, { headers: gw.auth });
    expect(one.status).toBe(200);
  });

  it('the wait is bounded by DISCOVERY_TIMEOUT_MS when an endpoint hangs', async () => {
    const hanging = await start('hanging', ['slow-model']);
    hanging.modelsBehavior = { type: 'hang' };
    const ok = await start('ok', ['fast-model']);
    const gw = await bed.gateway({
      endpoints: [
        { url: hanging.url, name: 'hanging' },
        { url: ok.url, name: 'ok' },
      ],
      env: { DISCOVERY_TIMEOUT_MS: '200' },
      waitForDiscovery: false,
    });
    expect(await modelIds(gw)).toEqual(['fast-model']);
  });

  it('sends the endpoint’s own key to /v1/models', async () => {
    const a = await start('a', ['llama']);
    await bed.gateway({ endpoints: [{ url: a.url, apiKey: 'sk-a-discovery' }] });
    expect(a.modelRequests[0]!.headers.authorization).toBe('Bearer sk-a-discovery');
  });

  it('a hanging endpoint never blocks start-up or other models', async () => {
    const hanging = await start('hanging', ['slow-model']);
    hanging.modelsBehavior = { type: 'hang' };
    const ok = await start('ok', ['fast-model']);
    const started = Date.now();
    const gw = await bed.gateway({
      endpoints: [
        { url: hanging.url, name: 'hanging' },
        { url: ok.url, name: 'ok' },
      ],
      env: { DISCOVERY_TIMEOUT_MS: '60000' },
      waitForDiscovery: false,
    });
    expect(Date.now() - started).toBeLessThan(1000);
    // (GET /v1/models waits for the whole first round; see the test above.)
    await vi.waitFor(
      () => expect(gw.gateway.registry.listModels().map((m) => m.id)).toEqual(['fast-model']),
      {
        timeout: 2000,
        interval: 10,
      },
    );
    const res = await chat(gw.url, gw.auth, { body: body('fast-model') });
    expect(res.status).toBe(200);
    expect((await fetch(`${gw.url}/health/readiness`)).status).toBe(200);
  });

  it('endpoints are polled in parallel, each bounded by DISCOVERY_TIMEOUT_MS', async () => {
    const hangs = await Promise.all([start('h1', ['m']), start('h2', ['m']), start('h3', ['m'])]);
    for (const h of hangs) h.modelsBehavior = { type: 'hang' };
    const started = Date.now();
    const gw = await bed.gateway({
      endpoints: hangs.map((h) => ({ url: h.url, name: h.name })),
      env: { DISCOVERY_TIMEOUT_MS: '200' },
    });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(550);
    expect(gw.gateway.registry.endpoints.every((e) => e.lastDiscoveryError?.includes('200 ms'))).toBe(true);
  });

  it('an endpoint that is down at boot joins when it comes back', async () => {
    const up = await start('up', ['llama']);
    const downUrl = await refusedUrl();
    const gw = await bed.gateway({
      endpoints: [
        { url: up.url, name: 'up' },
        { url: downUrl, name: 'late' },
      ],
    });
    expect(await modelIds(gw)).toEqual(['llama']);
    expect(gw.gateway.registry.endpoints[1]!.lastDiscoveryError).toMatch(/refused/);

    await start('late', ['qwen'], Number(new URL(downUrl).port));
    await gw.gateway.discovery.refresh();
    expect(await modelIds(gw)).toEqual(['llama', 'qwen']);
    const res = await chat(gw.url, gw.auth, { body: body('qwen') });
    expect(res.status).toBe(200);
    expect(res.headers['x-gateway-endpoint']).toBe('late');
  });

  it('a model that disappears from an endpoint stops being routed there', async () => {
    const a = await start('a', ['llama', 'qwen']);
    const b = await start('b', ['qwen']);
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a', priority: 1 },
        { url: b.url, name: 'b', priority: 2 },
      ],
    });
    expect((await chat(gw.url, gw.auth, { body: body('qwen') })).headers['x-gateway-endpoint']).toBe('a');

    a.models = ['llama'];
    await gw.gateway.discovery.refresh();
    for (let i = 0; i < 5; i++) {
      expect((await chat(gw.url, gw.auth, { body: body('qwen') })).headers['x-gateway-endpoint']).toBe('b');
    }
    b.models = [];
    await gw.gateway.discovery.refresh();
    const gone = await chat(gw.url, gw.auth, { body: body('qwen') });
    expect(gone.status).toBe(404);
    expect(gone.json.error.code).toBe('model_not_found');
    expect(await modelIds(gw)).toEqual(['llama']);
  });

  it('a failed poll keeps the last known list', async () => {
    const a = await start('a', ['llama']);
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    a.modelsBehavior = { type: 'status', status: 500 };
    await gw.gateway.discovery.refresh();
    expect(await modelIds(gw)).toEqual(['llama']);
    expect(gw.gateway.registry.endpoints[0]!.lastDiscoveryError).toMatch(/HTTP 500/);
  });

  it('a static models list is never replaced by discovery; the endpoint is still probed for health', async () => {
    const a = await start('a', ['ignored']);
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a', models: ['static-model'] }] });
    expect(a.modelRequests).toHaveLength(1);
    expect(await modelIds(gw)).toEqual(['static-model']);
    // An endpoint without /v1/models is alive all the same: no health failure for a 404 there.
    a.modelsBehavior = { type: 'status', status: 404 };
    await gw.gateway.discovery.refresh();
    expect(gw.gateway.registry.health.get('a').consecutiveFailures).toBe(0);
    expect(await modelIds(gw)).toEqual(['static-model']);
  });

  it('polls periodically every DISCOVERY_INTERVAL_MS', async () => {
    const a = await start('a', ['llama']);
    const gw = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a' }],
      env: { DISCOVERY_INTERVAL_MS: '30' },
    });
    a.models = ['llama', 'new-model'];
    await vi.waitFor(async () => expect(await modelIds(gw)).toContain('new-model'), {
      timeout: 2000,
      interval: 10,
    });
    expect(a.modelRequests.length).toBeGreaterThanOrEqual(2);
  });

  it('a request that arrives before the first poll finished waits for it instead of failing', async () => {
    const a = await start('a', ['llama']);
    a.modelsBehavior = {
      type: 'json',
      delayMs: 150,
      body: { object: 'list', data: [{ id: 'llama', object: 'model' }] },
    };
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }], waitForDiscovery: false });
    const res = await chat(gw.url, gw.auth, { body: body('llama') });
    expect(res.status).toBe(200);
  });

  it('ignores malformed model lists without crashing', async () => {
    const a = await start('a', ['llama']);
    a.modelsBehavior = { type: 'json', body: { nope: true } };
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    expect(gw.gateway.registry.endpoints[0]!.lastDiscoveryError).toMatch(/no data array/);
    expect((await fetch(`${gw.url}/health/readiness`)).status).toBe(503);
  });
});
