import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { CHILD_TIMEOUT_MS, freePort, spawnGateway, waitForOutput } from '../helpers/child-gateway.js';
import { chat, sseData, streamBody, streamedText } from '../helpers/http.js';
import { CLIENT_KEY, gatewayEnv, type EndpointSpec } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();
const ADMIN_KEY = 'sk-admin-reload';
const configFor = (endpoints: EndpointSpec[]) => loadConfig({ env: gatewayEnv(endpoints) });

describe('live reconfiguration in process', () => {
  it('adds, re-weights, drains and removes endpoints without dropping a stream in flight', async () => {
    const a = await bed.upstream('a');
    const b = await bed.upstream('b');
    a.script({ type: 'sse', text: 'one two three four five six', delayMs: 30 });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });

    const stream = chat(gw.url, gw.auth, { body: streamBody() });
    await a.waitForRequest(1);

    // Add b and drain a while a's stream is in flight.
    const added = gw.gateway.reload(
      configFor([
        { url: a.url, name: 'a', weight: 0 },
        { url: b.url, name: 'b' },
      ]),
    );
    expect(added).toMatchObject({ added: ['b'], removed: [], changed: ['a'] });
    await vi.waitFor(() => expect(gw.gateway.registry.serving('test-model')).toHaveLength(2), {
      timeout: 2000,
    });
    for (let i = 0; i < 5; i++) expect((await chat(gw.url, gw.auth)).headers['x-gateway-endpoint']).toBe('b');

    // Remove a entirely while its stream still runs.
    const removed = gw.gateway.reload(configFor([{ url: b.url, name: 'b' }]));
    expect(removed.removed).toEqual(['a']);
    const res = await stream;
    expect(streamedText(res.text)).toBe('one two three four five six');
    expect(sseData(res.text).at(-1)).toBe('[DONE]');
    expect(a.requests).toHaveLength(1);
    expect(gw.gateway.registry.endpoints.map((e) => e.config.name)).toEqual(['b']);
  });

  it('a request for a model of an endpoint a reload just added waits for its discovery, not a 404 or 503', async () => {
    const a = await bed.upstream({ name: 'a', models: ['model-a'] });
    const b = await bed.upstream({ name: 'b', models: ['model-b'] });
    // b takes a while to list its models: the request arrives before it has.
    b.modelsBehavior = {
      type: 'json',
      delayMs: 150,
      body: { object: 'list', data: [{ id: 'model-b', object: 'model' }] },
    };
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    gw.gateway.reload(
      configFor([
        { url: a.url, name: 'a' },
        { url: b.url, name: 'b' },
      ]),
    );
    const res = await chat(gw.url, gw.auth, {
      body: { model: 'model-b', messages: [{ role: 'user', content: 'x' }] },
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-gateway-endpoint']).toBe('b');
  });

  it('keeps health and discovered models of endpoints that stay', async () => {
    const a = await bed.upstream({ name: 'a', models: ['llama'] });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const before = gw.gateway.registry.endpoints[0]!;
    gw.gateway.reload(configFor([{ url: a.url, name: 'a', weight: 5 }]));
    const after = gw.gateway.registry.endpoints[0]!;
    expect(after).toBe(before);
    expect(after.config.weight).toBe(5);
    expect([...after.models]).toEqual(['llama']);
  });

  it('applies other settings to the next request (MAX_ATTEMPTS, owned_by, keys)', async () => {
    const a = await bed.upstream('a');
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    gw.gateway.reload(
      loadConfig({
        env: gatewayEnv([{ url: a.url, name: 'a' }], { MODELS_OWNED_BY: 'akash', API_KEY: 'sk-new-client' }),
      }),
    );
    expect((await fetch(`${gw.url}/v1/models`, { headers: gw.auth })).status).toBe(401);
    const res = await fetch(`${gw.url}/v1/models`, { headers: { authorization: 'Bearer sk-new-client' } });
    expect(((await res.json()) as { data: Array<{ owned_by: string }> }).data[0]!.owned_by).toBe('akash');
  });

  it('rejects an invalid new configuration, keeps the old one and says why (admin route)', async () => {
    const a = await bed.upstream('a');
    let extra: Record<string, string> = { ENDPOINTS: '[{"url":"not a url"}]' };
    const gw = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a' }],
      env: { ADMIN_API_KEY: ADMIN_KEY },
      reloadEnv: () => extra,
    });
    const bad = await fetch(`${gw.url}/api/v1/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(bad.status).toBe(422);
    const body = (await bad.json()) as { error: { message: string; code: string } };
    expect(body.error.code).toBe('invalid_configuration');
    expect(body.error.message).toMatch(/not a valid URL/);
    expect(gw.logs.some((l) => l.msg === 'configuration reload rejected; keeping the old one')).toBe(true);
    expect((await chat(gw.url, gw.auth)).status).toBe(200);

    const b = await bed.upstream('b');
    extra = { ENDPOINTS: JSON.stringify([{ url: b.url, name: 'b' }]) };
    const good = await fetch(`${gw.url}/api/v1/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(good.status).toBe(200);
    expect(await good.json()).toMatchObject({ added: ['b'], removed: ['a'] });
  });
});

describe('live reconfiguration of the real process', () => {
  const yaml = (urls: Array<{ name: string; url: string }>) =>
    [
      'auth: { apiKeys: ["${API_KEY}"] }',
      'endpoints:',
      ...urls.map((u) => `  - { name: ${u.name}, url: "${u.url}" }`),
      '',
    ].join('\n');

  async function setup() {
    const a = await bed.upstream({ name: 'a', models: ['model-a'] });
    const b = await bed.upstream({ name: 'b', models: ['model-b'] });
    const dir = await bed.tempDir('gateway-reload-');
    const file = path.join(dir, 'gateway.yaml');
    await writeFile(file, yaml([{ name: 'a', url: a.url }]));
    const port = await freePort();
    const proc = await spawnGateway(
      bed,
      { API_KEY: CLIENT_KEY, PORT: String(port), HOST: '127.0.0.1', CONFIG_FILE: file },
      dir,
    );
    await waitForOutput(proc, 'akash llm gateway listening');
    const base = `http://127.0.0.1:${port}`;
    const models = async () =>
      (
        (await (
          await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } })
        ).json()) as {
          data: Array<{ id: string }>;
        }
      ).data.map((m) => m.id);
    await vi.waitFor(async () => expect(await models()).toEqual(['model-a']), {
      timeout: CHILD_TIMEOUT_MS,
      interval: 20,
    });
    return { a, b, file, proc, models };
  }

  it('SIGHUP re-reads CONFIG_FILE', async () => {
    const { b, file, proc, models } = await setup();
    await writeFile(file, yaml([{ name: 'b', url: b.url }]));
    proc.proc.kill('SIGHUP');
    await vi.waitFor(async () => expect(await models()).toEqual(['model-b']), {
      timeout: CHILD_TIMEOUT_MS,
      interval: 20,
    });
  });

  it('a changed CONFIG_FILE is picked up by itself; a broken one is rejected and the old config stays', async () => {
    const { a, b, file, proc, models } = await setup();
    await writeFile(file, 'endpoints: [ {{ broken');
    await waitForOutput(proc, 'configuration reload rejected');
    expect(await models()).toEqual(['model-a']);
    await writeFile(
      file,
      yaml([
        { name: 'a', url: a.url },
        { name: 'b', url: b.url },
      ]),
    );
    await vi.waitFor(async () => expect(await models()).toEqual(['model-a', 'model-b']), {
      timeout: CHILD_TIMEOUT_MS,
      interval: 20,
    });
  });
});
