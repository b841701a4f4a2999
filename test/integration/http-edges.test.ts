import { once } from 'node:events';
import net from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { refusedUrl } from '../helpers/fake-upstream.js';
import type { EndpointSpec, TestGateway } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const MiB = 1024 * 1024;

const bed = useTestBed();

async function setup(env: Record<string, string> = {}, extra: EndpointSpec[] = []) {
  const a = await bed.upstream('a');
  const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a', apiKey: 'sk-up-a' }, ...extra], env });
  return { a, gw };
}

/** The fields these tests read from a JSON answer. */
interface Json {
  object?: string;
  status?: string;
  owned_by?: string;
  data?: Array<Record<string, unknown>>;
  error?: Record<string, unknown>;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: Json | undefined;
}

async function send(
  g: TestGateway,
  path: string,
  options: {
    method?: 'GET' | 'POST' | 'OPTIONS' | 'DELETE';
    body?: string | Buffer;
    headers?: Record<string, string>;
  } = {},
): Promise<Reply> {
  const res = await request(`${g.url}${path}`, {
    method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
    headers: { ...g.auth, 'content-type': 'application/json', ...options.headers },
    body: options.body,
  });
  const text = await res.body.text();
  let json: Json | undefined;
  try {
    json = JSON.parse(text) as Json;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

const post = (g: TestGateway, body: unknown, headers?: Record<string, string>) =>
  send(g, '/v1/chat/completions', {
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    headers,
  });

/** Asserts an OpenAI error body, and that nothing of a stack trace or an `Error:` prefix leaks. */
function expectError(res: Reply, status: number, code?: string): { message: string; param: unknown } {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/application\/json/);
  expect(Object.keys(res.json as object)).toEqual(['error']);
  const error = res.json!.error!;
  expect(Object.keys(error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(error.message).toEqual(expect.any(String));
  expect(error.message).not.toBe('');
  if (code !== undefined) expect(error.code).toBe(code);
  expect(res.text).not.toMatch(/\n\s*at |\bat .*\.[jt]s:\d+|Error:/);
  return error as { message: string; param: unknown };
}

/** A chat body whose JSON encoding is exactly `size` bytes. */
function bodyOfSize(size: number): Buffer {
  const skeleton = JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: '' }] });
  const pad = size - Buffer.byteLength(skeleton);
  const body = Buffer.from(
    JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'x'.repeat(pad) }] }),
  );
  expect(body.length).toBe(size);
  return body;
}

describe('routes and request validation', () => {
  it('answers an unknown route with a 404 OpenAI error', async () => {
    const { gw } = await setup();
    expectError(await send(gw, '/nope'), 404, 'route_not_found');
    expectError(await send(gw, '/v1/no-such-route', { body: '{}' }), 404, 'route_not_found');
    // /v1/completions is a route now: an empty body is a 400 naming what it needs.
    expectError(await send(gw, '/v1/completions', { body: '{}' }), 400, 'invalid_request');
  });

  it('answers a known route with the wrong method with 405 and Allow', async () => {
    const { gw } = await setup();
    const res = await send(gw, '/v1/chat/completions');
    expectError(res, 405, 'method_not_allowed');
    expect(res.headers.allow).toBe('POST');
    const models = await send(gw, '/v1/models', { method: 'DELETE' });
    expectError(models, 405, 'method_not_allowed');
    expect(models.headers.allow).toBe('GET');
  });

  it('answers an unknown model with 404 model_not_found without calling the upstream', async () => {
    const { a, gw } = await setup();
    const e = expectError(
      await post(gw, { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
      404,
      'model_not_found',
    );
    expect(e.message).toContain('no-such-model');
    expect(e.param).toBe('model');
    const streamed = await post(gw, {
      model: 'nope',
      stream: true,
      messages: [{ role: 'user', content: 'x' }],
    });
    expectError(streamed, 404, 'model_not_found');
    expect(a.requests).toHaveLength(0);
  });

  it('answers invalid JSON and an empty body with 400 invalid_json', async () => {
    const { a, gw } = await setup();
    expectError(await post(gw, '{"model": "test-model", "messages": [}'), 400, 'invalid_json');
    expectError(await post(gw, ''), 400, 'invalid_json');
    expect(a.requests).toHaveLength(0);
  });

  it.each<[string, unknown, string, RegExp]>([
    ['missing model', { messages: [{ role: 'user', content: 'hi' }] }, 'model', /model/],
    ['empty model', { model: '', messages: [{ role: 'user', content: 'hi' }] }, 'model', /model/],
    ['model not a string', { model: 7, messages: [{ role: 'user', content: 'hi' }] }, 'model', /model/],
    ['missing messages', { model: 'test-model' }, 'messages', /messages.*array/],
    ['messages not an array', { model: 'test-model', messages: 'hi' }, 'messages', /messages.*array/],
    ['empty messages', { model: 'test-model', messages: [] }, 'messages', /at least one message/],
    [
      'stream: "yes"',
      { model: 'test-model', messages: [{ role: 'user', content: 'hi' }], stream: 'yes' },
      'stream',
      /stream.*true or false/,
    ],
  ])('answers 400 for %s, naming the field', async (_case, body, param, message) => {
    const { a, gw } = await setup();
    const e = expectError(await post(gw, body), 400, 'invalid_request');
    expect(e.param).toBe(param);
    expect(e.message).toMatch(message);
    expect(a.requests).toHaveLength(0);
  });

  it('answers 400 for a body that is not a JSON object', async () => {
    const { gw } = await setup();
    for (const body of ['[]', 'null', '"text"', '42']) expectError(await post(gw, body), 400);
  });
});

describe('body size', () => {
  it('accepts exactly 10 MiB and forwards it byte for byte', async () => {
    const { a, gw } = await setup();
    const body = bodyOfSize(10 * MiB);
    const res = await post(gw, body);
    expect(res.status).toBe(200);
    expect(a.requests).toHaveLength(1);
    expect(a.requests[0]!.body.length).toBe(10 * MiB);
    expect(a.requests[0]!.body.equals(body)).toBe(true);
  });

  it('answers 10 MiB + 1 byte with 413 request_too_large', async () => {
    const { a, gw } = await setup();
    const e = expectError(await post(gw, bodyOfSize(10 * MiB + 1)), 413, 'request_too_large');
    expect(e.message).toMatch(/10 MiB/);
    expect(a.requests).toHaveLength(0);
  });

  it('follows BODY_LIMIT, also for a chunked body without content-length', async () => {
    const { a, gw } = await setup({ BODY_LIMIT: '1kb' });
    expect((await post(gw, bodyOfSize(1024))).status).toBe(200);
    expectError(await post(gw, bodyOfSize(1025)), 413, 'request_too_large');
    const big = bodyOfSize(4096);
    const res = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...gw.auth, 'content-type': 'application/json' },
      body: Readable.from(
        (function* () {
          for (let i = 0; i < big.length; i += 512) yield big.subarray(i, i + 512);
        })(),
      ),
    });
    expect(res.statusCode).toBe(413);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('request_too_large');
    expect(a.requests).toHaveLength(1);
  });
});

describe('pass-through', () => {
  it('forwards unknown fields untouched (byte-identical body)', async () => {
    const { a, gw } = await setup();
    const raw =
      '{"model":"test-model",  "messages":[{"role":"user","content":"h\\u00e9llo \u{1F600}"}],' +
      '"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",' +
      '"properties":{"city":{"type":"string"}}}}}],"tool_choice":"auto",' +
      '"response_format":{"type":"json_object"},"stream_options":{"include_usage":true},' +
      '"chat_template_kwargs":{"enable_thinking":false},"temperature":0.70,"top_p":1.0,"x":1e2}';
    const res = await post(gw, raw);
    expect(res.status).toBe(200);
    expect(a.requests[0]!.body.equals(Buffer.from(raw))).toBe(true);
  });

  it('tells the upstream that the body is JSON', async () => {
    const { a, gw } = await setup();
    expect(
      (await post(gw, { model: 'test-model', messages: [{ role: 'user', content: 'hi' }] })).status,
    ).toBe(200);
    expect(a.requests[0]!.headers['content-type']).toMatch(/^application\/json/);
  });

  const body = { model: 'test-model', messages: [{ role: 'user', content: 'hi' }] };
  it.each<[string, number, unknown, Record<string, unknown>]>([
    [
      'OpenAI error',
      400,
      {
        error: {
          message: "This model's maximum context length is 8192 tokens.",
          type: 'invalid_request_error',
          param: 'messages',
          code: 'context_length_exceeded',
        },
      },
      {
        message: "This model's maximum context length is 8192 tokens.",
        param: 'messages',
        code: 'context_length_exceeded',
        type: 'invalid_request_error',
      },
    ],
    [
      'OpenAI error',
      413,
      { error: { message: 'Prompt too large for this server.', type: 'invalid_request_error' } },
      { message: 'Prompt too large for this server.' },
    ],
    [
      "vLLM's older error",
      400,
      {
        object: 'error',
        message: 'max_tokens must be at least 1, got -5.',
        type: 'BadRequestError',
        code: 400,
      },
      { message: 'max_tokens must be at least 1, got -5.' },
    ],
    [
      'FastAPI detail',
      422,
      { detail: 'temperature must be between 0 and 2' },
      { message: 'temperature must be between 0 and 2' },
    ],
  ])(
    'keeps the status and message of an upstream %s %i, without failover',
    async (_s, status, upBody, want) => {
      const b = await bed.upstream('b');
      const { a, gw } = await setup({}, [{ url: b.url, name: 'b', priority: 2 }]);
      a.script({ type: 'status', status, body: upBody });
      const e = expectError(await post(gw, body), status);
      expect(e).toMatchObject(want);
      expect(a.requests).toHaveLength(1);
      expect(b.requests).toHaveLength(0);
    },
  );
});

describe('GET /v1/models', () => {
  it('serves the OpenAI list: union of the upstreams, no duplicates, created in seconds', async () => {
    const a = await bed.upstream({ name: 'a', models: ['model-a', 'shared'] });
    const b = await bed.upstream({ name: 'b', models: ['shared', 'model-b'] });
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a' },
        { url: b.url, name: 'b' },
        { url: b.url, name: 'static', models: ['meta-llama/Llama-3.1-8B'] },
      ],
    });
    const res = await send(gw, '/v1/models');
    expect(res.status).toBe(200);
    expect(res.json?.object).toBe('list');
    const data = res.json?.data ?? [];
    expect(data.map((m) => m.id).sort()).toEqual(['meta-llama/Llama-3.1-8B', 'model-a', 'model-b', 'shared']);
    for (const m of data) {
      expect(Object.keys(m).sort()).toEqual(['created', 'id', 'object', 'owned_by']);
      expect(m).toMatchObject({ object: 'model', owned_by: 'proxy' });
      expect(Number.isInteger(m.created)).toBe(true);
      expect(m.created as number).toBeGreaterThan(1.6e9);
      expect(m.created as number).toBeLessThan(1e11);
    }
  });

  it('uses MODELS_OWNED_BY', async () => {
    const { gw } = await setup({ MODELS_OWNED_BY: 'akash' });
    const res = await send(gw, '/v1/models');
    expect(res.json?.data).toEqual([expect.objectContaining({ id: 'test-model', owned_by: 'akash' })]);
    expect((await send(gw, '/v1/models/test-model')).json?.owned_by).toBe('akash');
  });

  it('serves one model by an id that contains a slash', async () => {
    const a = await bed.upstream({ name: 'a', models: ['meta-llama/Llama-3.1-8B'] });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    for (const path of ['/v1/models/meta-llama/Llama-3.1-8B', '/v1/models/meta-llama%2FLlama-3.1-8B']) {
      const res = await send(gw, path);
      expect(res.status, path).toBe(200);
      expect(res.json).toMatchObject({ id: 'meta-llama/Llama-3.1-8B', object: 'model', owned_by: 'proxy' });
    }
    expectError(await send(gw, '/v1/models/meta-llama/unknown'), 404, 'model_not_found');
  });
});

describe('health', () => {
  it('answers /health and /health/liveliness with 200', async () => {
    const { gw } = await setup();
    for (const path of ['/health', '/health/liveliness']) {
      const res = await send(gw, path, { headers: { authorization: '' } });
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ status: 'ok' });
    }
  });

  it('is ready with a usable endpoint', async () => {
    const { gw } = await setup();
    const res = await send(gw, '/health/readiness');
    expect(res.status).toBe(200);
    expect(res.json?.status).toBe('ready');
  });

  it('is not ready (503) when the only endpoint could not be discovered', async () => {
    const gw = await bed.gateway({ endpoints: [{ url: await refusedUrl(), name: 'down' }] });
    const res = await send(gw, '/health/readiness');
    expect(res.status).toBe(503);
    expect(res.json?.status).toBe('not_ready');
    expect(res.text).not.toMatch(/\n\s*at |Error:/);
  });

  it('is not ready when the only endpoint is drained (weight 0)', async () => {
    const a = await bed.upstream('a');
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a', weight: 0 }] });
    expect((await send(gw, '/health/readiness')).status).toBe(503);
  });
});

describe('CORS', () => {
  it('answers a preflight with 204 and the allow headers, without auth', async () => {
    const { gw } = await setup();
    const res = await send(gw, '/v1/chat/completions', {
      method: 'OPTIONS',
      headers: {
        authorization: '',
        origin: 'https://chat.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(String(res.headers['access-control-allow-methods'])).toMatch(/POST/);
    expect(String(res.headers['access-control-allow-headers'])).toMatch(/authorization/i);
    expect(String(res.headers['access-control-allow-headers'])).toMatch(/content-type/i);
  });

  it('with an allow-list of origins every answer says Vary: Origin, allowed origin or not', async () => {
    const { gw } = await setup();
    const current = gw.gateway.config.current;
    gw.gateway.reload({
      ...current,
      server: { ...current.server, cors: { origins: ['https://chat.example'] } },
    });
    const allowed = await send(gw, '/v1/models', { headers: { origin: 'https://chat.example' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('https://chat.example');
    const other = await send(gw, '/v1/models', { headers: { origin: 'https://evil.example' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    const none = await send(gw, '/v1/models');
    for (const res of [allowed, other, none]) expect(String(res.headers.vary)).toMatch(/origin/i);
    const preflight = await send(gw, '/v1/chat/completions', {
      method: 'OPTIONS',
      headers: { origin: 'https://chat.example', 'access-control-request-method': 'POST' },
    });
    expect(String(preflight.headers.vary)).toMatch(/access-control-request-headers/i);
  });

  it('exposes the gateway headers to browsers on normal responses', async () => {
    const { gw } = await setup();
    const res = await send(gw, '/v1/models', { headers: { origin: 'https://chat.example' } });
    expect(res.headers['access-control-allow-origin']).toBe('*');
    const exposed = String(res.headers['access-control-expose-headers']).split(', ');
    // Browser clients may read the request id, the cache's verdict and the rate-limit headers.
    expect(exposed).toEqual(
      expect.arrayContaining([
        'x-request-id',
        'request-id',
        'x-cache',
        'retry-after',
        'x-ratelimit-remaining-requests',
        'x-ratelimit-reset-tokens',
      ]),
    );
  });
});

describe("requests Node's HTTP parser rejects get OpenAI error bodies", () => {
  /** Writes raw bytes on a new connection and reads until the gateway closes it. */
  async function raw(
    g: TestGateway,
    bytes: string,
    keepOpen = false,
  ): Promise<{ status: number; json: Json }> {
    const { port, hostname } = new URL(g.url);
    const socket = net.connect(Number(port), hostname);
    await once(socket, 'connect');
    socket.write(bytes);
    if (!keepOpen) socket.end();
    const parts: Buffer[] = [];
    for await (const chunk of socket) parts.push(chunk as Buffer);
    const text = Buffer.concat(parts).toString('utf8');
    const [head, body] = text.split('\r\n\r\n');
    expect(head).toMatch(/\r\nconnection: close/i);
    return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]), json: JSON.parse(body!) as Json };
  }

  it('a malformed request: 400', async () => {
    const { gw } = await setup();
    const res = await raw(gw, 'GET /v1/models HTTP/1.1\r\nhost x\r\n\r\n');
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: 'malformed_request', type: 'invalid_request_error' });
  });

  it('headers over 16 KiB: 431', async () => {
    const { gw } = await setup();
    const res = await raw(gw, `GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(res.status).toBe(431);
    expect(res.json.error).toMatchObject({ code: 'request_headers_too_large' });
  });

  it('a body that does not arrive within CLIENT_BODY_TIMEOUT_MS: 408', async () => {
    const { gw, a } = await setup({ CLIENT_BODY_TIMEOUT_MS: '300' });
    const started = Date.now();
    const res = await raw(
      gw,
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: ${gw.auth.authorization}\r\n` +
        'content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"model":',
      true,
    );
    expect(res.status).toBe(408);
    expect(res.json.error).toMatchObject({ code: 'request_timeout' });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(a.requests).toHaveLength(0);
  });
});
