import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { HAS_REDIS, REDIS_URL } from '../helpers/services.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-endpoints-0123456789';
const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

describe('endpoints managed at runtime (admin API)', () => {
  const bed = useTestBed();

  async function start(database: string, env: Record<string, string> = {}) {
    const fromFile = await bed.upstream({ name: 'file', models: ['llama'] });
    const gw = await bed.gateway({
      endpoints: [{ url: fromFile.url, name: 'file-gpu' }],
      env: { ADMIN_API_KEY: ADMIN, DATABASE_URL: database, ...env },
    });
    const call = (method: string, route: string, body?: unknown) =>
      fetch(`${gw.url}/api/v1/${route}`, {
        method,
        headers: admin,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    return { gw, fromFile, call };
  }

  const sqliteFile = async () =>
    `sqlite:${path.join(await mkdtemp(path.join(os.tmpdir(), 'gw-endpoints-')), `${randomUUID()}.db`)}`;

  it('add, re-weight, drain and remove an endpoint: traffic follows, the list says where each came from', async () => {
    const { gw, fromFile, call } = await start(await sqliteFile());
    const added = await bed.upstream({ name: 'added', models: ['qwen'] });
    const res = await call('POST', 'endpoints', {
      name: 'gpu-b',
      url: added.url,
      apiKey: 'sk-upstream-secret-b',
      priority: 1,
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ name: 'gpu-b', source: 'runtime', hasApiKey: true, priority: 1 });
    expect(JSON.stringify(body)).not.toContain('sk-upstream-secret-b');
    // Its models are discovered; the openai SDK reaches it.
    await gw.gateway.discovery.refresh();
    const sdk = new OpenAI({ apiKey: CLIENT_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    expect((await sdk.models.list()).data.map((m) => m.id).sort()).toEqual(['llama', 'qwen']);
    await sdk.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'x' }] });
    expect(added.requests).toHaveLength(1);
    expect(added.requests[0]!.headers.authorization).toBe('Bearer sk-upstream-secret-b');

    const list = (await (await call('GET', 'endpoints')).json()) as { data: Array<Record<string, unknown>> };
    expect(list.data.map((e) => [e.name, e.source])).toEqual([
      ['file-gpu', 'config'],
      ['gpu-b', 'runtime'],
    ]);
    // Drained (weight 0): no new request goes there.
    const drained = await call('PATCH', 'endpoints/gpu-b', { weight: 0 });
    expect(drained.status).toBe(200);
    expect(await drained.json()).toMatchObject({ weight: 0 });
    await expect(
      sdk.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toThrow();
    expect(added.requests).toHaveLength(1);
    // Removed.
    const removed = await call('DELETE', 'endpoints/gpu-b');
    expect(await removed.json()).toEqual({ object: 'endpoint.deleted', name: 'gpu-b', deleted: true });
    const after = (await (await call('GET', 'endpoints')).json()) as { data: unknown[] };
    expect(after.data).toHaveLength(1);
    await sdk.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'x' }] });
    expect(fromFile.requests).toHaveLength(1);
  });

  it('bad input: 400 naming the field, 404 for an unknown name, 409 for a taken name or a file endpoint', async () => {
    const { call } = await start('sqlite::memory:');
    const bad = async (method: string, route: string, body: unknown) => {
      const res = await call(method, route, body);
      return {
        status: res.status,
        error: ((await res.json()) as { error: { code: string; param: string | null } }).error,
      };
    };
    expect(await bad('POST', 'endpoints', { url: 'http://x.example' })).toMatchObject({
      status: 400,
      error: { param: 'name' },
    });
    expect(await bad('POST', 'endpoints', { name: 'n', url: 'ftp://x' })).toMatchObject({
      status: 400,
      error: { param: 'url' },
    });
    expect(await bad('POST', 'endpoints', { name: 'n', url: 'http://x.example', weight: -1 })).toMatchObject({
      status: 400,
      error: { param: 'weight' },
    });
    expect((await bad('POST', 'endpoints', [1, 2])).status).toBe(400);
    expect(await bad('POST', 'endpoints', { name: 'file-gpu', url: 'http://x.example' })).toMatchObject({
      status: 409,
      error: { code: 'endpoint_exists' },
    });
    expect((await call('POST', 'endpoints', { name: 'n', url: 'http://127.0.0.1:9' })).status).toBe(201);
    expect(await bad('POST', 'endpoints', { name: 'n', url: 'http://127.0.0.1:9' })).toMatchObject({
      status: 409,
      error: { code: 'endpoint_exists' },
    });
    expect(await bad('PATCH', 'endpoints/n', { name: 'other' })).toMatchObject({
      status: 400,
      error: { param: 'name' },
    });
    expect(await bad('PATCH', 'endpoints/n', { colour: 'red' })).toMatchObject({
      status: 400,
      error: { param: 'colour' },
    });
    expect(await bad('PATCH', 'endpoints/missing', { weight: 1 })).toMatchObject({
      status: 404,
      error: { code: 'endpoint_not_found' },
    });
    expect(await bad('DELETE', 'endpoints/file-gpu', undefined)).toMatchObject({
      status: 409,
      error: { code: 'endpoint_in_config' },
    });
    const res = await fetch((await call('GET', 'endpoints')).url, { method: 'PUT', headers: admin });
    expect(res.status).toBe(405);
  });

  it('survive a restart, and reach another replica on the same database within a second', async () => {
    const database = await sqliteFile();
    const one = await start(database);
    const two = await start(database);
    const added = await bed.upstream({ name: 'added', models: ['qwen'] });
    const before = Date.now();
    expect(
      (await one.call('POST', 'endpoints', { name: 'gpu-b', url: added.url, models: ['qwen'] })).status,
    ).toBe(201);
    // The other replica polls the store's change counter every 250 ms.
    await expect
      .poll(() => two.gw.gateway.registry.endpoints.map((e) => e.config.name), {
        timeout: 1_000,
        interval: 20,
      })
      .toContain('gpu-b');
    expect(Date.now() - before).toBeLessThan(1_000);
    await one.gw.close();
    // A gateway started afterwards has it from the store.
    const three = await start(database);
    expect(three.gw.gateway.registry.endpoints.map((e) => e.config.name)).toEqual(['file-gpu', 'gpu-b']);
    const status = (await (await three.call('GET', 'providers/status')).json()) as {
      endpoints: Array<{ name: string; source: string }>;
    };
    expect(status.endpoints.map((e) => [e.name, e.source])).toEqual([
      ['file-gpu', 'config'],
      ['gpu-b', 'runtime'],
    ]);
  });

  it.runIf(HAS_REDIS)(
    'with Redis, another replica hears of each change at once, without polling',
    async () => {
      const database = await sqliteFile();
      const redis = { REDIS_URL, REDIS_PREFIX: `gw-endpoints-${randomUUID()}:` };
      const one = await start(database, redis);
      const two = await start(database, redis);
      // The second replica stops polling the store: only the message on Redis can tell it.
      await two.gw.gateway.keys.stop();
      const names = () => two.gw.gateway.registry.endpoints.map((e) => `${e.config.name}:${e.config.weight}`);
      const added = await bed.upstream({ name: 'added', models: ['qwen'] });
      expect(
        (await one.call('POST', 'endpoints', { name: 'gpu-b', url: added.url, models: ['qwen'] })).status,
      ).toBe(201);
      await expect.poll(names, { timeout: 1_000, interval: 10 }).toEqual(['file-gpu:1', 'gpu-b:1']);
      expect((await one.call('PATCH', 'endpoints/gpu-b', { weight: 4 })).status).toBe(200);
      await expect.poll(names, { timeout: 1_000, interval: 10 }).toEqual(['file-gpu:1', 'gpu-b:4']);
      expect((await one.call('DELETE', 'endpoints/gpu-b')).status).toBe(200);
      await expect.poll(names, { timeout: 1_000, interval: 10 }).toEqual(['file-gpu:1']);
    },
  );
});
