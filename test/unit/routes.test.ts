import { Writable } from 'node:stream';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { CLIENT_KEY, gatewayEnv } from '../helpers/start-gateway.js';

/**
 * The JSON routes through the Express app alone (supertest, no listening gateway and no upstream):
 * models, health, errors and the admin routes. Completions, streams and failover are tested on real
 * sockets against fake upstreams (test/integration).
 */
const ADMIN_KEY = 'sk-admin-routes-0123456789';
const AUTH = { authorization: `Bearer ${CLIENT_KEY}` };

function app(env: Record<string, string> = {}) {
  const config = loadConfig({
    env: gatewayEnv(
      [
        // Static model lists: nothing to discover, so the app needs no upstream.
        { url: 'http://127.0.0.1:9', name: 'gpu-a', models: ['meta-llama/Llama-3.1-8B', 'qwen-7b'] },
        { url: 'http://127.0.0.1:9', name: 'gpu-b', models: ['qwen-7b'], weight: 0 },
      ],
      env,
    ),
  });
  const logger = createLogger({ level: 'silent', stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  const gateway = new Gateway({ config, logger, now: () => 1_767_225_600_000 });
  return { app: gateway.app, gateway };
}

describe('GET /v1/models', () => {
  it('lists every served model once, created in Unix seconds, owned by MODELS_OWNED_BY', async () => {
    const res = await request(app({ MODELS_OWNED_BY: 'akash' }).app)
      .get('/v1/models')
      .set(AUTH);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      object: 'list',
      data: [
        { id: 'meta-llama/Llama-3.1-8B', object: 'model', created: 1_767_225_600, owned_by: 'akash' },
        { id: 'qwen-7b', object: 'model', created: 1_767_225_600, owned_by: 'akash' },
      ],
    });
  });

  it('serves one model by an id with a slash, and 404 model_not_found for another', async () => {
    const { app: a } = app();
    const one = await request(a).get('/v1/models/meta-llama/Llama-3.1-8B').set(AUTH);
    expect(one.body).toMatchObject({ id: 'meta-llama/Llama-3.1-8B', object: 'model' });
    const missing = await request(a).get('/v1/models/nope').set(AUTH);
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: 'model_not_found', param: 'model' });
  });

  it('needs the client key', async () => {
    const res = await request(app().app).get('/v1/models');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm=/);
    expect(res.body.error).toMatchObject({ code: 'missing_api_key', type: 'authentication_error' });
  });
});

describe('health', () => {
  it('liveness always, readiness once an endpoint is known to work and while the gateway is not stopping', async () => {
    const { app: a, gateway } = app();
    expect((await request(a).get('/health')).body).toEqual({ status: 'ok' });
    expect((await request(a).get('/health/liveliness')).status).toBe(200);
    // Static model lists, but nothing has ever answered: not known to work.
    const unknown = await request(a).get('/health/readiness');
    expect(unknown.status).toBe(503);
    expect(unknown.body).toEqual({
      status: 'not_ready',
      up: 0,
      total: 2,
      endpoints: [
        { name: 'gpu-a', condition: 'unverified' },
        { name: 'gpu-b', condition: 'draining' },
      ],
    });
    gateway.registry.health.probeSucceeded(gateway.registry.health.get('gpu-a'));
    const ready = await request(a).get('/health/readiness');
    expect(ready.status).toBe(200);
    // A drained endpoint is the operator's choice: ready, not degraded.
    expect(ready.body).toEqual({
      status: 'ready',
      up: 1,
      total: 2,
      endpoints: [
        { name: 'gpu-a', condition: 'up' },
        { name: 'gpu-b', condition: 'draining' },
      ],
    });
    expect(ready.headers['cache-control']).toBe('no-store');
    await gateway.shutdown(0);
    const stopping = await request(a).get('/health/readiness');
    expect(stopping.status).toBe(503);
    expect(stopping.body.status).toBe('shutting_down');
  });
});

describe('errors', () => {
  it('an unknown route is a 404 in OpenAI shape, a wrong method a 405 with Allow', async () => {
    const { app: a } = app();
    const unknown = await request(a).get('/v1/nope').set(AUTH);
    expect(unknown.status).toBe(404);
    expect(Object.keys(unknown.body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    expect(unknown.body.error.code).toBe('route_not_found');
    const method = await request(a).get('/v1/chat/completions').set(AUTH);
    expect(method.status).toBe(405);
    expect(method.headers.allow).toBe('POST');
    expect(method.body.error.code).toBe('method_not_allowed');
  });

  it('a route without /v1 says to add /v1 to the base URL', async () => {
    const { app: a } = app();
    for (const path of ['/chat/completions', '/models', '/completions', '/embeddings']) {
      const res = await request(a).post(path).set(AUTH).send('{}');
      expect(res.status, path).toBe(404);
      expect(res.body.error.message).toBe(
        `Unknown route: POST ${path}. Did you mean /v1${path}? Add /v1 to the base URL of your client (http://host:port/v1).`,
      );
    }
    expect((await request(a).get('/nope').set(AUTH)).body.error.message).not.toMatch(/Did you mean/);
  });

  it('model_not_found lists the models there are', async () => {
    const { app: a } = app();
    const res = await request(a).get('/v1/models/llama3').set(AUTH);
    expect(res.status).toBe(404);
    expect(res.body.error).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect(res.body.error.message).toBe(
      "The model 'llama3' does not exist or is not served by any endpoint of this gateway. Available models: 'meta-llama/Llama-3.1-8B', 'qwen-7b'.",
    );
  });

  it('bad bodies are 400s that say what is wrong', async () => {
    const { app: a } = app();
    const post = (body: string) =>
      request(a).post('/v1/chat/completions').set(AUTH).set('content-type', 'application/json').send(body);
    expect((await post('')).body.error.code).toBe('invalid_json');
    expect((await post('{"model":')).body.error.message).toMatch(/not valid JSON/);
    expect((await post('[]')).body.error.code).toBe('invalid_request');
    const noMessages = await post('{"model":"qwen-7b"}');
    expect(noMessages.status).toBe(400);
    expect(noMessages.body.error.param).toBe('messages');
  });
});

describe('admin routes', () => {
  it('without ADMIN_API_KEY are a 404 that says to set it', async () => {
    for (const path of ['/api/v1/providers/status', '/api/v1/config', '/api/v1/anything']) {
      const res = await request(app().app).get(path).set(AUTH);
      expect(res.status, path).toBe(404);
      expect(res.body.error).toMatchObject({
        code: 'admin_disabled',
        message: 'Admin routes are off: set ADMIN_API_KEY to turn them on (then restart or reload).',
      });
    }
  });

  it('a wrong method is a 405 with Allow, after the key is checked', async () => {
    const { app: a } = app({ ADMIN_API_KEY: ADMIN_KEY });
    const admin = { authorization: `Bearer ${ADMIN_KEY}` };
    for (const [method, path, allow] of [
      ['post', '/api/v1/providers/status', 'GET'],
      ['delete', '/api/v1/config', 'GET'],
      ['get', '/api/v1/config/reload', 'POST'],
      ['put', '/api/v1/runtime', 'GET'],
    ] as const) {
      const res = await request(a)[method](path).set(admin);
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.allow).toBe(allow);
      expect(res.body.error.code).toBe('method_not_allowed');
    }
    expect((await request(a).post('/api/v1/providers/status')).status).toBe(401);
    expect((await request(a).get('/api/v1/nope').set(admin)).body.error.code).toBe('route_not_found');
  });

  it('GET /api/v1/config gives the effective configuration with sources, keys redacted', async () => {
    const { app: a } = app({ ADMIN_API_KEY: ADMIN_KEY, MAX_ATTEMPTS: '4' });
    const res = await request(a).get('/api/v1/config').set('authorization', `Bearer ${ADMIN_KEY}`);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatchObject({
      object: 'config',
      files: { configFile: null, envFile: null },
      // The two endpoints of this app share a URL.
      warnings: [expect.stringMatching(/^ENDPOINTS: endpoints\[1\] \(gpu-b\) has the same url/)],
      settings: {
        routing: { maxAttempts: { value: 4, source: 'env', variable: 'MAX_ATTEMPTS' } },
        server: { port: { value: 3000, source: 'default' } },
        auth: {
          apiKeys: { value: ['[redacted]'], source: 'env', variable: 'API_KEY' },
          adminKey: { value: '[redacted]', source: 'env', variable: 'ADMIN_API_KEY' },
        },
      },
    });
    const text = JSON.stringify(res.body);
    expect(text).not.toContain(ADMIN_KEY);
    expect(text).not.toContain(CLIENT_KEY);
  });

  it('do not exist without ADMIN_API_KEY, refuse client keys, and answer the admin key', async () => {
    expect((await request(app().app).get('/api/v1/providers/status').set(AUTH)).status).toBe(404);
    const { app: a } = app({ ADMIN_API_KEY: ADMIN_KEY });
    expect((await request(a).get('/api/v1/providers/status').set(AUTH)).status).toBe(401);
    const status = await request(a)
      .get('/api/v1/providers/status')
      .set('authorization', `Bearer ${ADMIN_KEY}`);
    expect(status.status).toBe(200);
    expect(status.body.endpoints.map((e: { name: string; state: string }) => [e.name, e.state])).toEqual([
      ['gpu-a', 'healthy'],
      ['gpu-b', 'draining'],
    ]);
    expect(JSON.stringify(status.body)).not.toContain(ADMIN_KEY);
    const runtime = await request(a).get('/api/v1/runtime').set('authorization', `Bearer ${ADMIN_KEY}`);
    expect(runtime.body).toMatchObject({ object: 'runtime', inFlight: 0, continuationMb: 0 });
  });

  it('reload without a configuration source is a 409 reload_unavailable', async () => {
    const { app: a } = app({ ADMIN_API_KEY: ADMIN_KEY });
    const res = await request(a).post('/api/v1/config/reload').set('authorization', `Bearer ${ADMIN_KEY}`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('reload_unavailable');
  });
});
