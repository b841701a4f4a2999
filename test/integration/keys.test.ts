import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { useTestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-tests-0123456789';
const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

describe('virtual keys and teams (admin API)', () => {
  const bed = useTestBed();

  async function start(env: Record<string, string> = {}) {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama', 'qwen', 'mistral'] });
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { ADMIN_API_KEY: ADMIN, ...env },
    });
    const call = async (
      method: string,
      path: string,
      body?: unknown,
      headers: Record<string, string> = admin,
    ) => {
      const res = await fetch(`${gw.url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let json: any;
      try {
        json = JSON.parse(text);
      } catch {
        json = text;
      }
      return { status: res.status, json, headers: res.headers };
    };
    const client = (key: string) => new OpenAI({ apiKey: key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    return { upstream, gw, call, client };
  }

  it('creates a key shown once, lists it without its secret, and the key works with the openai SDK', async () => {
    const { call, client, gw } = await start();
    const created = await call('POST', '/api/v1/keys', {
      name: 'ci',
      user: 'alice',
      metadata: { project: 'x' },
    });
    expect(created.status).toBe(201);
    expect(created.json.key).toMatch(/^sk-gw-[A-Za-z0-9_-]{32,}$/);
    expect(created.json).toMatchObject({
      name: 'ci',
      user: 'alice',
      team: null,
      models: null,
      metadata: { project: 'x' },
    });
    expect(created.headers.get('cache-control')).toBe('no-store');

    const answer = await client(created.json.key).chat.completions.create({
      model: 'llama',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(answer.choices[0]?.message.content).toBeTruthy();

    const list = await call('GET', '/api/v1/keys');
    expect(list.status).toBe(200);
    expect(list.json.object).toBe('list');
    const [listed] = list.json.data;
    expect(listed.id).toBe(created.json.id);
    expect(listed.keyPreview).toBe(`sk-gw-…${created.json.key.slice(-4)}`);
    expect(listed.revoked).toBe(false);
    expect(JSON.stringify(list.json)).not.toContain(created.json.key);
    // Nor in the logs, even when an admin pastes the secret where an id goes.
    expect((await call('GET', `/api/v1/keys/${created.json.key}`)).status).toBe(404);
    expect(gw.rawLogs()).toContain('/api/v1/keys/sk-gw-[redacted]');
    expect(gw.rawLogs()).not.toContain(created.json.key);

    await gw.gateway.keys.stop(); // writes the last-use times
    const one = await call('GET', `/api/v1/keys/${created.json.id}`);
    expect(one.json.lastUsedAt).not.toBeNull();
  });

  it('revoke and rotate: the old secret stops at once, the rotated one works', async () => {
    const { call, client } = await start();
    const a = (await call('POST', '/api/v1/keys', { name: 'a' })).json;
    const chat = (key: string) =>
      client(key).chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'hi' }] });
    await chat(a.key);

    const rotated = await call('POST', `/api/v1/keys/${a.id}/rotate`);
    expect(rotated.status).toBe(200);
    expect(rotated.json.key).not.toBe(a.key);
    await expect(chat(a.key)).rejects.toMatchObject({ status: 401, code: 'invalid_api_key' });
    await chat(rotated.json.key);

    const revoked = await call('DELETE', `/api/v1/keys/${a.id}`);
    expect(revoked.json).toMatchObject({ id: a.id, revoked: true });
    await expect(chat(rotated.json.key)).rejects.toMatchObject({
      status: 401,
      code: 'invalid_api_key',
      message: expect.stringContaining('revoked'),
    });
    expect((await call('POST', `/api/v1/keys/${a.id}/rotate`)).json.error.code).toBe('key_revoked');
  });

  it('an expired key gets 401 saying when it expired', async () => {
    let now = Date.parse('2026-12-05T12:00:00Z');
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { ADMIN_API_KEY: ADMIN },
      now: () => now,
    });
    const created = await fetch(`${gw.url}/api/v1/keys`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'short', expiresIn: '1h' }),
    }).then((r) => r.json() as Promise<{ key: string; expiresAt: string }>);
    expect(created.expiresAt).toBe('2026-12-05T13:00:00.000Z');
    const sdk = new OpenAI({ apiKey: created.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    await sdk.models.list();
    now += 3_600_000;
    await expect(sdk.models.list()).rejects.toMatchObject({
      status: 401,
      code: 'invalid_api_key',
      message: expect.stringContaining('expired on 2026-12-05T13:00:00.000Z'),
    });
  });

  it('model allow-lists: key within team, /v1/models filtered, 403 model_not_allowed, aliases allowed', async () => {
    const { call, client } = await start();
    expect(
      (await call('POST', '/api/v1/teams', { id: 'research', models: ['llama', 'qwen', 'fast'] })).status,
    ).toBe(201);
    const key = (
      await call('POST', '/api/v1/keys', { name: 'r', team: 'research', models: ['llama', 'mistral'] })
    ).json;
    const sdk = client(key.key);
    // The key names llama and mistral; its team allows llama and qwen: llama only.
    const models = await sdk.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['llama']);
    await expect(
      sdk.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toMatchObject({ status: 403, code: 'model_not_allowed', param: 'model' });
    await expect(sdk.models.retrieve('mistral')).rejects.toMatchObject({ status: 404 });

    // A model the key may use but no endpoint serves: the 404 names only what the key may use.
    const ghost = (await call('POST', '/api/v1/keys', { name: 'g', models: ['llama', 'ghost'] })).json;
    const missing = await client(ghost.key)
      .chat.completions.create({ model: 'ghost', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: { status: number; message: string }) => e);
    expect(missing).toMatchObject({ status: 404 });
    expect((missing as { message: string }).message).toContain("'llama'");
    expect((missing as { message: string }).message).not.toContain("'qwen'");

    // Team only: its list applies.
    const teamKey = (await call('POST', '/api/v1/keys', { name: 't', team: 'research' })).json;
    const teamModels = await client(teamKey.key).models.list();
    expect(teamModels.data.map((m) => m.id).sort()).toEqual(['llama', 'qwen']);

    // A team's models changed: every key of it sees the change.
    await call('PATCH', '/api/v1/teams/research', { models: ['qwen'] });
    expect((await client(teamKey.key).models.list()).data.map((m) => m.id)).toEqual(['qwen']);
  });

  it('an alias in a key’s models allows the alias (and its fallbacks when reached through it)', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const dir = await bed.tempDir('gw-alias-');
    const file = `${dir}/gateway.yaml`;
    await import('node:fs/promises').then((fs) =>
      fs.writeFile(file, 'aliases:\n  chat: [missing-model, llama]\n'),
    );
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { ADMIN_API_KEY: ADMIN, CONFIG_FILE: file },
    });
    const key = await fetch(`${gw.url}/api/v1/keys`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'alias', models: ['chat'] }),
    }).then((r) => r.json() as Promise<{ key: string }>);
    const sdk = new OpenAI({ apiKey: key.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const answer = await sdk.chat.completions.create({
      model: 'chat',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(answer.choices[0]?.message.content).toBeTruthy();
    await expect(
      sdk.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toMatchObject({ status: 403, code: 'model_not_allowed' });
  });

  it('teams: create, get, list, update, refuse deleting one with keys, delete', async () => {
    const { call } = await start();
    const team = await call('POST', '/api/v1/teams', { id: 'ops', limits: { rpm: 100 } });
    expect(team.status).toBe(201);
    expect(team.json).toMatchObject({ id: 'ops', object: 'team', limits: { rpm: 100 }, models: null });
    expect((await call('POST', '/api/v1/teams', { id: 'ops' })).json.error.code).toBe('team_exists');
    expect((await call('GET', '/api/v1/teams')).json.data.map((t: { id: string }) => t.id)).toEqual(['ops']);
    expect((await call('PATCH', '/api/v1/teams/ops', { limits: null })).json.limits).toBeNull();
    const key = (await call('POST', '/api/v1/keys', { name: 'k', team: 'ops' })).json;
    const refused = await call('DELETE', '/api/v1/teams/ops');
    expect(refused.status).toBe(409);
    expect(refused.json.error.code).toBe('team_in_use');
    await call('DELETE', `/api/v1/keys/${key.id}`);
    expect((await call('DELETE', '/api/v1/teams/ops')).json).toEqual({
      id: 'ops',
      object: 'team',
      deleted: true,
    });
    expect((await call('GET', '/api/v1/teams/ops')).status).toBe(404);
  });

  it('lists keys by team and user, page by page', async () => {
    const { call } = await start();
    await call('POST', '/api/v1/teams', { id: 'a' });
    for (let i = 0; i < 5; i++)
      await call('POST', '/api/v1/keys', {
        name: `k${i}`,
        team: i < 3 ? 'a' : undefined,
        user: i === 4 ? 'bob' : undefined,
      });
    expect((await call('GET', '/api/v1/keys?team=a')).json.data).toHaveLength(3);
    expect(
      (await call('GET', '/api/v1/keys?user=bob')).json.data.map((k: { name: string }) => k.name),
    ).toEqual(['k4']);
    const page1 = (await call('GET', '/api/v1/keys?limit=2')).json;
    expect(page1.data.map((k: { name: string }) => k.name)).toEqual(['k4', 'k3']);
    expect(page1.has_more).toBe(true);
    const page2 = (await call('GET', `/api/v1/keys?limit=2&after=${page1.next_cursor}`)).json;
    expect(page2.data.map((k: { name: string }) => k.name)).toEqual(['k2', 'k1']);
  });

  it('bad input: 400 naming the field, 404 for unknown ids, 401 for a key in the wrong format; never a 500', async () => {
    const { call } = await start();
    const cases: Array<[string, string, unknown, number, string | null]> = [
      ['POST', '/api/v1/keys', {}, 400, 'name'],
      ['POST', '/api/v1/keys', { name: 5 }, 400, 'name'],
      ['POST', '/api/v1/keys', { name: 'x', limits: { rpm: -1 } }, 400, 'limits.rpm'],
      [
        'POST',
        '/api/v1/keys',
        { name: 'x', limits: { budget: { amount: 1, period: 'week' } } },
        400,
        'limits.budget.period',
      ],
      ['POST', '/api/v1/keys', { name: 'x', limits: { rps: 1 } }, 400, 'limits.rps'],
      ['POST', '/api/v1/keys', { name: 'x', expiresIn: 'soon' }, 400, 'expiresIn'],
      ['POST', '/api/v1/keys', { name: 'x', expiresAt: 'tomorrow' }, 400, 'expiresAt'],
      ['POST', '/api/v1/keys', { name: 'x', expiresAt: '2001-01-01T00:00:00Z' }, 400, 'expiresAt'],
      [
        'POST',
        '/api/v1/keys',
        { name: 'x', expiresAt: '2030-01-01T00:00:00Z', expiresIn: '1d' },
        400,
        'expiresIn',
      ],
      ['POST', '/api/v1/keys', { name: 'x', team: 'nope' }, 400, 'team'],
      ['POST', '/api/v1/keys', { name: 'x', models: 'llama' }, 400, 'models'],
      ['POST', '/api/v1/keys', { name: 'x', metadata: [1] }, 400, 'metadata'],
      ['POST', '/api/v1/keys', { name: 'x', unknown: 1 }, 400, 'unknown'],
      ['POST', '/api/v1/keys', '{"name":', 400, null],
      ['POST', '/api/v1/keys', '[]', 400, null],
      ['POST', '/api/v1/teams', { id: 'has space' }, 400, 'id'],
      ['POST', '/api/v1/teams', { limits: {} }, 400, 'id'],
      ['PATCH', '/api/v1/keys/key_nope', { name: 'x' }, 404, null],
      ['GET', '/api/v1/keys/key_nope', undefined, 404, null],
      ['DELETE', '/api/v1/keys/key_nope', undefined, 404, null],
      ['POST', '/api/v1/keys/key_nope/rotate', undefined, 404, null],
      ['GET', '/api/v1/teams/nope', undefined, 404, null],
      ['PATCH', '/api/v1/teams/nope', { limits: null }, 404, null],
      ['DELETE', '/api/v1/teams/nope', undefined, 404, null],
      ['GET', '/api/v1/keys?limit=0', undefined, 400, 'limit'],
      ['GET', '/api/v1/keys?limit=abc', undefined, 400, 'limit'],
      ['GET', '/api/v1/keys?after=key_nope', undefined, 400, 'after'],
      ['PUT', '/api/v1/keys', undefined, 405, null],
      ['POST', '/api/v1/keys', { name: 'x', expiresIn: 1e20 }, 400, 'expiresIn'],
      ['POST', '/api/v1/keys', { name: 'x', expiresIn: '9999999999d' }, 400, 'expiresIn'],
      ['POST', '/api/v1/keys', { name: 'x', expiresAt: '9999-01-01T00:00:00Z' }, 400, 'expiresAt'],
      ['POST', '/api/v1/keys', { name: 'x'.repeat(300) }, 400, 'name'],
      ['POST', '/api/v1/keys', { name: 'nul\u0000byte' }, 400, 'name'],
      ['POST', '/api/v1/keys', { name: 'x', limits: { rmp: 60 } }, 400, 'limits.rmp'],
      ['POST', '/api/v1/keys', { name: 'x', limits: { rpm: 1.5 } }, 400, 'limits.rpm'],
      ['POST', '/api/v1/keys', 'null', 400, null],
      ['POST', '/api/v1/keys', '"str"', 400, null],
      ['POST', '/api/v1/teams', { id: 'ok', models: ['a\u0000'] }, 400, 'models.0'],
    ];
    for (const [method, path, body, status, param] of cases) {
      const res = await call(method, path, body);
      expect({ method, path, body, status: res.status }).toEqual({ method, path, body, status });
      expect(res.json.error.message).toBeTruthy();
      if (param) expect({ path, body, param: res.json.error.param }).toEqual({ path, body, param });
    }
    // The messages say what is wrong, in words.
    const messageOf = async (body: unknown) =>
      (await call('POST', '/api/v1/keys', body)).json.error.message as string;
    expect(await messageOf({ name: 5 })).toBe("'name' must be text (got the number 5).");
    expect(await messageOf({})).toBe("'name' is required.");
    expect(await messageOf({ name: 'x'.repeat(300) })).toBe("'name' must be at most 200 characters long.");
    expect(await messageOf({ name: 'x', limits: { rpm: 0 } })).toBe(
      "'limits.rpm' must be greater than 0 (got 0).",
    );
    expect(await messageOf('null')).toMatch(/^The body must be a mapping/);
    // A body sent without a JSON content type (curl -d) is read as JSON all the same.
    const form = await call('POST', '/api/v1/keys', '{"name":"from-curl"}', {
      authorization: `Bearer ${ADMIN}`,
    });
    expect(form.status).toBe(201);
    // Keys in the wrong format, or unknown, on client routes: 401, never a lookup error.
    for (const key of ['sk-gw-short', 'sk-gw-' + 'x'.repeat(40), 'not-a-key', 'sk-gw-' + '!'.repeat(40)]) {
      const res = await call('GET', '/v1/models', undefined, { authorization: `Bearer ${key}` });
      expect(res.status).toBe(401);
      expect(res.json.error.code).toBe('invalid_api_key');
    }
    // Client keys never open the admin routes; virtual keys neither.
    const key = (await call('POST', '/api/v1/keys', { name: 'k' })).json.key;
    expect((await call('GET', '/api/v1/keys', undefined, { authorization: `Bearer ${key}` })).status).toBe(
      401,
    );
  });
});
