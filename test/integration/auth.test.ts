import { once } from 'node:events';
import net from 'node:net';
import request from 'supertest';
import { request as undiciRequest } from 'undici';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import type { FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, gatewayEnv, type EndpointSpec, type TestGateway } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const UPSTREAM_KEY = 'sk-upstream-a-SECRET-42';
const BODY = { model: 'test-model', messages: [{ role: 'user', content: 'hi' }] };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const bed = useTestBed();

async function setup(
  options: { endpoint?: Partial<EndpointSpec>; env?: Record<string, string> } = {},
): Promise<{ a: FakeUpstream; gw: TestGateway }> {
  const a = await bed.upstream('a');
  const gw = await bed.gateway({
    endpoints: [{ url: a.url, name: 'a', apiKey: UPSTREAM_KEY, ...options.endpoint }],
    env: options.env,
  });
  return { a, gw };
}

const chat = (g: TestGateway, authorization?: string) => {
  const req = request(g.url).post('/v1/chat/completions').set('content-type', 'application/json');
  if (authorization !== undefined) req.set('authorization', authorization);
  return req.send(JSON.stringify(BODY));
};

function expectOpenAIError(res: request.Response, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/application\/json/);
  const body = res.body as { error: Record<string, unknown> };
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(body.error.message).toEqual(expect.any(String));
  expect(body.error.type).toBe('authentication_error');
  expect(body.error.code).toBe(code);
  expect(res.text).not.toMatch(/\n\s+at |Error:/);
}

describe('client authentication', () => {
  it('answers 401 with an OpenAI error and WWW-Authenticate when Authorization is missing', async () => {
    const { a, gw } = await setup();
    for (const res of [await chat(gw), await request(gw.url).get('/v1/models')]) {
      expectOpenAIError(res, 401, 'missing_api_key');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    }
    expect(a.requests).toHaveLength(0);
  });

  it.each([
    ['Bearer', 'a scheme without a token (was a 500 in the original gateway)'],
    ['Bearer    ', 'a scheme followed by spaces only'],
    ['Basic dXNlcjpwYXNz', 'another scheme'],
    [`Token ${CLIENT_KEY}`, 'an unknown scheme with the right key'],
    [CLIENT_KEY, 'the bare key'],
  ])('answers 401 for %j (%s)', async (authorization) => {
    const { a, gw } = await setup();
    const res = await chat(gw, authorization);
    expect(res.status).toBe(401);
    const { error } = res.body as { error: { type: string; message: string } };
    expect(error.type).toBe('authentication_error');
    expect(error.message).toEqual(expect.any(String));
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(a.requests).toHaveLength(0);
  });

  it('answers 401 invalid_api_key for a wrong key without echoing it', async () => {
    const { a, gw } = await setup();
    const res = await chat(gw, 'Bearer sk-wrong-key-987');
    expectOpenAIError(res, 401, 'invalid_api_key');
    expect(res.headers['www-authenticate']).toMatch(/invalid_token/);
    expect(res.text).not.toContain('sk-wrong-key-987');
    expect(a.requests).toHaveLength(0);
  });

  it('accepts a lower-case scheme and extra spaces', async () => {
    const { gw } = await setup();
    expect((await chat(gw, `bearer ${CLIENT_KEY}`)).status).toBe(200);
    expect((await chat(gw, `BEARER   ${CLIENT_KEY}  `)).status).toBe(200);
  });

  it('accepts every one of several configured keys', async () => {
    const { gw } = await setup({ env: { API_KEY: 'sk-first, sk-second ,sk-third' } });
    for (const key of ['sk-first', 'sk-second', 'sk-third']) {
      expect((await chat(gw, `Bearer ${key}`)).status).toBe(200);
    }
    expect((await chat(gw, `Bearer ${CLIENT_KEY}`)).status).toBe(401);
    expect((await chat(gw, 'Bearer sk-first,sk-second')).status).toBe(401);
  });

  it('serves the health routes without auth and /v1/models only with it', async () => {
    const { gw } = await setup();
    for (const p of ['/health', '/health/liveliness', '/health/readiness']) {
      expect((await request(gw.url).get(p)).status).toBe(200);
    }
    expect((await request(gw.url).get('/v1/models')).status).toBe(401);
    const models = await request(gw.url).get('/v1/models').set(gw.auth);
    expect(models.status).toBe(200);
    expect((models.body as { data: Array<{ id: string }> }).data.map((m) => m.id)).toEqual(['test-model']);
  });

  it('lets requests through with AUTH_DISABLED=true', async () => {
    const { a, gw } = await setup({ env: { API_KEY: '', AUTH_DISABLED: 'true' } });
    expect((await chat(gw)).status).toBe(200);
    expect((await request(gw.url).get('/v1/models')).status).toBe(200);
    expect((await chat(gw, 'Bearer anything')).status).toBe(200);
    expect(a.requests[1]!.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
  });

  it('never writes client or upstream keys to the logs', async () => {
    const { gw } = await setup();
    await chat(gw, `Bearer ${CLIENT_KEY}`);
    await chat(gw, 'Bearer sk-wrong-key-987');
    expect(gw.rawLogs()).not.toContain(CLIENT_KEY);
    expect(gw.rawLogs()).not.toContain('sk-wrong-key-987');
    expect(gw.rawLogs()).not.toContain(UPSTREAM_KEY);
  });
});

describe('what goes upstream', () => {
  it("sends the endpoint's own key, never the client's", async () => {
    const { a, gw } = await setup();
    expect((await chat(gw, `Bearer ${CLIENT_KEY}`)).status).toBe(200);
    const up = a.requests[0]!;
    expect(up.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(JSON.stringify(up.headers)).not.toContain(CLIENT_KEY);
    expect(a.modelRequests[0]!.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
  });

  it('sends no authorization header when the endpoint has no apiKey', async () => {
    const { a, gw } = await setup({ endpoint: { apiKey: undefined } });
    expect((await chat(gw, `Bearer ${CLIENT_KEY}`)).status).toBe(200);
    expect(a.requests[0]!.headers).not.toHaveProperty('authorization');
    expect(a.modelRequests[0]!.headers).not.toHaveProperty('authorization');
  });

  it('strips hop-by-hop and credential headers, even when configured; keeps configured custom ones', async () => {
    const { a, gw } = await setup({ env: { FORWARD_HEADERS: 'x-trace-id,x-hop-*' } });
    const body = JSON.stringify(BODY);
    const { port, hostname } = new URL(gw.url);
    const socket = net.connect(Number(port), hostname);
    await once(socket, 'connect');
    socket.write(
      [
        'POST /v1/chat/completions HTTP/1.1',
        `host: ${hostname}:${port}`,
        `authorization: Bearer ${CLIENT_KEY}`,
        'connection: x-hop-custom, close',
        'x-hop-custom: must-not-pass',
        'keep-alive: timeout=5',
        'proxy-authorization: Basic cHJveHk6c2VjcmV0',
        'te: trailers',
        'upgrade: h2c',
        'x-api-key: sk-client-in-x-api-key',
        'cookie: session=secret-cookie',
        'x-trace-id: trace-123',
        'x-request-id: req-hop-1',
        'content-type: application/json',
        `content-length: ${Buffer.byteLength(body)}`,
        '',
        body,
      ].join('\r\n'),
    );
    const parts: Buffer[] = [];
    for await (const chunk of socket) parts.push(chunk as Buffer);
    const response = Buffer.concat(parts).toString('utf8');
    expect(response).toMatch(/^HTTP\/1\.1 200 /);
    expect(response).toMatch(/\r\nx-request-id: req-hop-1\r\n/i);

    const headers = a.requests[0]!.headers;
    for (const name of [
      'x-hop-custom',
      'keep-alive',
      'proxy-authorization',
      'te',
      'upgrade',
      'x-api-key',
      'cookie',
    ]) {
      expect(headers, name).not.toHaveProperty(name);
    }
    expect(JSON.stringify(headers)).not.toMatch(/secret-cookie|sk-client-in-x-api-key|must-not-pass/);
    expect(headers['x-trace-id']).toBe('trace-123');
    expect(headers['x-request-id']).toBe('req-hop-1');
    expect(headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
  });
});

describe('client headers cannot hurt the upstream request (issue 9, part 2)', () => {
  it('600 junk headers neither strip the upstream key nor eject healthy endpoints', async () => {
    // Upstreams that keep only their first 500 headers (Node keeps 2,000, others fewer) and check their key.
    const upstreams = await Promise.all(
      ['a', 'b', 'c', 'd'].map((name) =>
        bed.upstream({ name, maxHeadersCount: 500, requireKey: UPSTREAM_KEY }),
      ),
    );
    const gw = await bed.gateway({
      endpoints: upstreams.map((u) => ({ url: u.url, name: u.name, apiKey: UPSTREAM_KEY })),
    });
    // 600: Node 26 refuses about 1,000 headers however short (431), Node 20 takes them.
    const junk = Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`x-j${i}`, 'j']));
    for (let i = 0; i < 6; i++) {
      const res = await undiciRequest(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json', ...junk },
        body: JSON.stringify(BODY),
      });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
    }
    const requests = upstreams.flatMap((u) => u.requests);
    expect(requests).toHaveLength(6);
    for (const r of requests) {
      expect(Object.keys(r.headers).some((h) => /^x-j\d+$/.test(h))).toBe(false);
      expect(r.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    }
    for (const u of upstreams) expect(gw.gateway.registry.health.get(u.name).isEjected).toBe(false);
  });

  it('forwards the default allow-list (user agent, trace context, OpenAI vendor headers) and nothing else', async () => {
    const { a, gw } = await setup();
    await chat(gw, `Bearer ${CLIENT_KEY}`)
      .set('user-agent', 'OpenAI/JS 6.0')
      .set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
      .set('openai-organization', 'org-1')
      .set('x-stainless-os', 'Linux')
      .set('x-session-id', 's-1');
    const headers = a.requests[0]!.headers;
    expect(headers['user-agent']).toBe('OpenAI/JS 6.0');
    expect(headers.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(headers['openai-organization']).toBe('org-1');
    expect(headers).not.toHaveProperty('x-stainless-os');
    expect(headers).not.toHaveProperty('x-session-id');
    // The gateway's own headers come first, the endpoint's key before all.
    const order = a.requests[0]!.rawHeaderNames.map((h) => h.toLowerCase());
    expect(order.indexOf('authorization')).toBeLessThan(order.indexOf('user-agent'));
    expect(order.indexOf('x-request-id')).toBeLessThan(order.indexOf('user-agent'));
  });

  it('caps what it forwards: an oversized allowed value is dropped', async () => {
    const { a, gw } = await setup();
    await chat(gw, `Bearer ${CLIENT_KEY}`).set('user-agent', 'u'.repeat(5000));
    expect(a.requests[0]!.headers).not.toHaveProperty('user-agent');
  });

  it('refuses to be configured to forward credentials or hop-by-hop headers', () => {
    expect(() =>
      loadConfig({
        env: { ...gatewayEnv([{ url: 'http://127.0.0.1:9' }]), FORWARD_HEADERS: 'authorization' },
      }),
    ).toThrow(/FORWARD_HEADERS.*'authorization' is never forwarded/s);
  });
});

describe('request ids', () => {
  it("echoes the client's x-request-id and forwards it upstream", async () => {
    const { a, gw } = await setup();
    const res = await chat(gw, `Bearer ${CLIENT_KEY}`).set('x-request-id', 'client-req-42');
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toBe('client-req-42');
    expect(a.requests[0]!.headers['x-request-id']).toBe('client-req-42');
  });

  it('generates one when absent (or unusable), the same upstream and in the response', async () => {
    const { a, gw } = await setup();
    const res = await chat(gw, `Bearer ${CLIENT_KEY}`);
    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(a.requests[0]!.headers['x-request-id']).toBe(res.headers['x-request-id']);

    const odd = await chat(gw, `Bearer ${CLIENT_KEY}`).set('x-request-id', 'has spaces <script>');
    expect(odd.headers['x-request-id']).toMatch(UUID);
    expect(a.requests[1]!.headers['x-request-id']).toBe(odd.headers['x-request-id']);
  });

  it('sets a request id on errors too', async () => {
    const { gw } = await setup();
    const res = await chat(gw).set('x-request-id', 'failing-req-1');
    expect(res.status).toBe(401);
    expect(res.headers['x-request-id']).toBe('failing-req-1');
    expect((await request(gw.url).get('/health')).headers['x-request-id']).toMatch(UUID);
  });
});
