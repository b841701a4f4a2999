import { describe, expect, it } from 'vitest';
import { refusedUrl } from '../helpers/fake-upstream.js';
import { chat } from '../helpers/http.js';
import { useTestBed } from '../helpers/test-bed.js';

/** Issue 11, part 3: health and errors that tell an operator what is wrong. */
const bed = useTestBed();

async function readiness(url: string) {
  const res = await fetch(`${url}/health/readiness`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('readiness tells the truth', () => {
  it('is 503 while every endpoint refuses connections, even with static model lists', async () => {
    const gw = await bed.gateway({
      endpoints: [
        { url: await refusedUrl(), name: 'a', models: ['test-model'] },
        { url: await refusedUrl(), name: 'b', models: ['test-model'] },
      ],
    });
    const { status, body } = await readiness(gw.url);
    expect(status).toBe(503);
    expect(body).toEqual({
      status: 'not_ready',
      up: 0,
      total: 2,
      endpoints: [
        { name: 'a', condition: 'failing' },
        { name: 'b', condition: 'failing' },
      ],
    });
    // Names and conditions only: no URL, no error text on a route without auth.
    expect(JSON.stringify(body)).not.toMatch(/127\.0\.0\.1|refused/);
  });

  it('is 200 degraded when some endpoints are down, with each one’s condition', async () => {
    const good = await bed.upstream('good');
    const gw = await bed.gateway({
      endpoints: [
        { url: good.url, name: 'good' },
        { url: await refusedUrl(), name: 'dead', models: ['test-model'] },
      ],
    });
    const { status, body } = await readiness(gw.url);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      status: 'degraded',
      up: 1,
      endpoints: [
        { name: 'good', condition: 'up' },
        { name: 'dead', condition: 'failing' },
      ],
    });
  });

  it('does not count an endpoint cooling down after a 429 until its Retry-After ends', async () => {
    let now = 1_800_000_000_000;
    const only = await bed.upstream('only');
    const gw = await bed.gateway({ endpoints: [{ url: only.url, name: 'only' }], now: () => now });
    expect((await readiness(gw.url)).status).toBe(200);
    only.script({ type: 'status', status: 429, headers: { 'retry-after': '30' } });
    expect((await chat(gw.url, gw.auth)).status).toBe(503);
    const cooling = await readiness(gw.url);
    expect(cooling.status).toBe(503);
    expect(cooling.body.endpoints).toEqual([{ name: 'only', condition: 'cooling-down' }]);
    now += 31_000;
    const after = await readiness(gw.url);
    expect(after.status).toBe(200);
    expect(after.body.endpoints).toEqual([{ name: 'only', condition: 'up' }]);
  });

  it('the admin status route gives the reason of each endpoint that is down', async () => {
    const gw = await bed.gateway({
      endpoints: [{ url: await refusedUrl(), name: 'dead', models: ['test-model'] }],
      env: { ADMIN_API_KEY: 'sk-admin-0123456789abcdef' },
    });
    const res = await fetch(`${gw.url}/api/v1/providers/status`, {
      headers: { authorization: 'Bearer sk-admin-0123456789abcdef' },
    });
    const body = (await res.json()) as { ready: boolean; status: string; pid: number; endpoints: any[] };
    expect(body).toMatchObject({ ready: false, status: 'not_ready', pid: process.pid });
    expect(body.endpoints[0]).toMatchObject({
      name: 'dead',
      up: false,
      condition: 'failing',
      lastSuccessAt: null,
    });
    expect(body.endpoints[0].reason).toMatch(/connection refused/);
  });
});

describe('a model that is unknown only because endpoints have not listed theirs', () => {
  it('a wrong upstream apiKey: 503 naming endpoints[i].apiKey, not 404, and the probed URL in the log', async () => {
    const up = await bed.upstream({ name: 'locked', requireKey: 'sk-right-key' });
    const gw = await bed.gateway({ endpoints: [{ url: up.url, name: 'locked', apiKey: 'sk-wrong-key' }] });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBeDefined();
    expect(res.json.error).toMatchObject({ code: 'model_list_incomplete', type: 'server_error' });
    expect(res.json.error.message).toBe(
      "The model 'test-model' is not listed by any endpoint that has listed its models, and one endpoint has " +
        'not listed theirs yet (locked: GET /v1/models answered HTTP 401: check endpoints[0].apiKey). Retry later.',
    );
    expect(res.text).not.toContain('sk-wrong-key');
    const probe = gw.logs.find((l) => l.msg === 'endpoint probe failed');
    expect(probe).toMatchObject({ endpoint: 'locked', url: `${up.url}/v1/models` });
    expect(gw.rawLogs()).not.toContain('sk-wrong-key');
    // The same for GET /v1/models/{id}.
    const one = await fetch(`${gw.url}/v1/models/test-model`, { headers: gw.auth });
    expect(one.status).toBe(503);
  });

  it('an endpoint down at start: 503 with its reason', async () => {
    const gw = await bed.gateway({ endpoints: [{ url: await refusedUrl(), name: 'down' }] });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(503);
    expect(res.json.error.code).toBe('model_list_incomplete');
    expect(res.json.error.message).toMatch(/\(down: connection refused/);
  });

  it('a model that really is missing is a 404 that lists the models there are', async () => {
    const up = await bed.upstream({ name: 'a', models: ['llama-3.1-8b', 'qwen2.5-7b'] });
    const gw = await bed.gateway({ endpoints: [{ url: up.url, name: 'a' }] });
    const res = await chat(gw.url, gw.auth, {
      body: { model: 'llama3', messages: [{ role: 'user', content: 'hi' }] },
    });
    expect(res.status).toBe(404);
    expect(res.json.error.message).toMatch(/Available models: 'llama-3\.1-8b', 'qwen2\.5-7b'\.$/);
  });

  it('with many models, names the closest ones', async () => {
    const models = Array.from({ length: 30 }, (_, i) => `model-${i}`).concat(['llama-3.1-8b-instruct']);
    const up = await bed.upstream({ name: 'a', models });
    const gw = await bed.gateway({ endpoints: [{ url: up.url, name: 'a' }] });
    const res = await chat(gw.url, gw.auth, {
      body: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] },
    });
    expect(res.json.error.message).toMatch(
      /The closest models here: 'llama-3\.1-8b-instruct', .* \(GET \/v1\/models lists them all\)\.$/,
    );
  });

  it('a url pasted with /v1/chat/completions still reaches the server', async () => {
    const up = await bed.upstream('a');
    const gw = await bed.gateway({ endpoints: [{ url: `${up.url}/v1/chat/completions`, name: 'a' }] });
    expect((await chat(gw.url, gw.auth)).status).toBe(200);
    expect(up.requests[0]?.path).toBe('/v1/chat/completions');
  });
});
