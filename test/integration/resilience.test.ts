import zlib from 'node:zlib';
import { request } from 'undici';
import { describe, expect, it, vi } from 'vitest';
import { completion, streamEvents, type Behavior } from '../helpers/fake-upstream.js';
import { chat, sseData, streamBody, streamedText } from '../helpers/http.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();
const ask = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content: 'x' }],
  ...extra,
});

async function primaryAndBackup(primary: Behavior, env: Record<string, string> = {}, ...backup: Behavior[]) {
  const a = await bed.upstream('primary', primary, primary);
  const b = await bed.upstream('backup', ...backup);
  const gw = await bed.gateway({
    endpoints: [
      { url: a.url, name: 'primary', priority: 1 },
      { url: b.url, name: 'backup', priority: 2 },
    ],
    env,
  });
  return { a, b, gw };
}

describe('model aliases and fallback chains', () => {
  it('a body nested 10,000 levels deep sent to an alias is a 400, never a 500', async () => {
    const small = await bed.upstream({ name: 'small', models: ['llama-8b'] });
    const gw = await bed.gateway({ endpoints: [{ url: small.url, name: 'small' }] });
    gw.gateway.reload({ ...gw.gateway.config.current, aliases: { smart: ['llama-8b'] } });
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    const body = `{"model":"smart","messages":[{"role":"user","content":"x"}],"extra":${deep}}`;
    const res = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...gw.auth, 'content-type': 'application/json' },
      body,
    });
    const json = (await res.body.json()) as { error: { message: string } };
    expect(res.statusCode).toBe(400);
    expect(json.error.message).toMatch(/nested too deeply/);
    expect(small.requests).toHaveLength(0);
  });

  it('moves on to the next model when a whole pool is exhausted, rewriting only the model field', async () => {
    const big = await bed.upstream({ name: 'big', models: ['llama-70b'] });
    const small = await bed.upstream({ name: 'small', models: ['llama-8b'] });
    const gw = await bed.gateway({
      endpoints: [
        { url: big.url, name: 'big' },
        { url: small.url, name: 'small' },
      ],
      random: () => 0,
    });
    gw.gateway.reload({ ...gw.gateway.config.current, aliases: { smart: ['llama-70b', 'llama-8b'] } });

    // The first model answers: no fallback header, and the real model name goes upstream.
    const direct = await chat(gw.url, gw.auth, { body: ask('smart') });
    expect(direct.headers['x-gateway-fallback-model']).toBeUndefined();
    expect(direct.headers['x-gateway-endpoint']).toBe('big');
    expect(big.requests.at(-1)!.json?.model).toBe('llama-70b');

    const unavailable: Behavior = { type: 'status', status: 503 };
    big.script(unavailable, unavailable, unavailable);
    const tools = [{ type: 'function', function: { name: 'f' } }];
    const res = await chat(gw.url, gw.auth, { body: ask('smart', { temperature: 0.2, tools }) });
    expect(res.status).toBe(200);
    expect(res.headers['x-gateway-fallback-model']).toBe('llama-8b');
    expect(res.headers['x-gateway-endpoint']).toBe('small');
    expect(res.headers['x-gateway-attempts']).toBe('4');
    expect(big.requests.map((r) => r.json?.model)).toEqual([
      'llama-70b',
      'llama-70b',
      'llama-70b',
      'llama-70b',
    ]);
    expect(small.requests[0]!.json).toEqual(ask('llama-8b', { temperature: 0.2, tools }));

    const models = (await (await fetch(`${gw.url}/v1/models`, { headers: gw.auth })).json()) as {
      data: Array<{ id: string }>;
    };
    expect(models.data.map((m) => m.id)).toContain('smart');
  });

  it('does not fall back on a request the upstream rejects as bad (4xx)', async () => {
    const a = await bed.upstream({ name: 'a', models: ['m1'] }, { type: 'status', status: 400 });
    const b = await bed.upstream({ name: 'b', models: ['m2'] });
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a' },
        { url: b.url, name: 'b' },
      ],
    });
    gw.gateway.reload({ ...gw.gateway.config.current, aliases: { any: ['m1', 'm2'] } });
    expect((await chat(gw.url, gw.auth, { body: ask('any') })).status).toBe(400);
    expect(b.requests).toHaveLength(0);
  });
});

describe('per-request timeouts and minimum throughput', () => {
  it('x-gateway-first-byte-timeout-ms makes this request fail over sooner', async () => {
    const { b } = await primaryAndBackup({ type: 'hang' });
    const started = Date.now();
    const res = await chat(bed.gw.url, bed.gw.auth, {
      headers: { 'x-gateway-first-byte-timeout-ms': '100' },
    });
    expect(res.headers['x-gateway-endpoint']).toBe('backup');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(b.requests).toHaveLength(1);
  });

  it('rejects a malformed override header with 400', async () => {
    await primaryAndBackup({ type: 'answer' });
    const res = await chat(bed.gw.url, bed.gw.auth, { headers: { 'x-gateway-idle-timeout-ms': 'soon' } });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: 'invalid_header', param: 'x-gateway-idle-timeout-ms' });
  });

  it('a stream slower than the minimum throughput ends with upstream_too_slow', async () => {
    // Every endpoint is as slow: the restart (nothing but the role had reached the client) is cut too.
    const slow: Behavior = { type: 'sse', text: 'a b c d e f g h i j', delayMs: 250 };
    await primaryAndBackup(slow, { MIN_BYTES_PER_SECOND: '2000', THROUGHPUT_WINDOW_MS: '150' }, slow, slow);
    const res = await chat(bed.gw.url, bed.gw.auth, { body: streamBody() });
    const last = JSON.parse(sseData(res.text).at(-1)!) as { error: { code: string } };
    expect(last.error.code).toBe('upstream_too_slow');
  });

  it('request headers may only tighten the limits, never loosen them', async () => {
    const slow: Behavior = { type: 'sse', text: 'a b c d e f', delayMs: 250 };
    await primaryAndBackup(slow, { MIN_BYTES_PER_SECOND: '2000', THROUGHPUT_WINDOW_MS: '150' }, slow, slow);
    const loosened = await chat(bed.gw.url, bed.gw.auth, {
      body: streamBody(),
      headers: { 'x-gateway-min-bytes-per-second': '0', 'x-gateway-request-timeout-ms': '3600000' },
    });
    expect(JSON.parse(sseData(loosened.text).at(-1)!).error.code).toBe('upstream_too_slow');
  });

  it('a stricter minimum throughput from the request applies', async () => {
    const slow: Behavior = { type: 'sse', text: 'a b c d e f', delayMs: 250 };
    await primaryAndBackup(slow, { THROUGHPUT_WINDOW_MS: '150' }, slow, slow);
    const res = await chat(bed.gw.url, bed.gw.auth, {
      body: streamBody(),
      headers: { 'x-gateway-min-bytes-per-second': '2000' },
    });
    expect(JSON.parse(sseData(res.text).at(-1)!).error.code).toBe('upstream_too_slow');
  });

  it("a timeout the client tightened itself never counts against the endpoint's health", async () => {
    const slow: Behavior = { type: 'answer', delayMs: 300 };
    const a = await bed.upstream('a', slow, slow, slow, slow, slow, slow);
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }], env: { MAX_ATTEMPTS: '1' } });
    for (let i = 0; i < 5; i++) {
      const res = await chat(gw.url, gw.auth, { headers: { 'x-gateway-first-byte-timeout-ms': '50' } });
      expect(res.status).toBe(504);
    }
    const health = gw.gateway.registry.health.get('a');
    expect(health.consecutiveFailures).toBe(0);
    expect(health.failures).toBe(0);
    expect(health.isEjected).toBe(false);
  });

  it('a shorter request timeout gives a 504 that says how long it waited', async () => {
    await primaryAndBackup({ type: 'hang' });
    const res = await chat(bed.gw.url, bed.gw.auth, { headers: { 'x-gateway-request-timeout-ms': '300' } });
    expect(res.status).toBe(504);
    expect(res.json.error.message).toContain('300 ms');
  });
});

describe('answers that are not what they claim', () => {
  it('a redirect is a misconfigured endpoint: next endpoint, and 502 upstream_redirect if none is left', async () => {
    const redirect: Behavior = {
      type: 'status',
      status: 301,
      headers: { location: 'https://gpu.example/v1/chat/completions' },
      body: '<html>Moved</html>',
    };
    await primaryAndBackup(redirect);
    const res = await chat(bed.gw.url, bed.gw.auth);
    expect(res.headers['x-gateway-endpoint']).toBe('backup');

    const only = await bed.upstream('only', redirect);
    const gw = await bed.gateway({ endpoints: [{ url: only.url, name: 'only' }] });
    const failed = await chat(gw.url, gw.auth);
    expect(failed.status).toBe(502);
    expect(failed.json.error.code).toBe('upstream_redirect');
    expect(failed.json.error.message).toContain('https://gpu.example');
  });

  it('a 200 whose body is not JSON is retried elsewhere, then 502 upstream_invalid_response', async () => {
    const html: Behavior = {
      type: 'custom',
      handle: (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>'),
    };
    await primaryAndBackup(html);
    expect((await chat(bed.gw.url, bed.gw.auth)).headers['x-gateway-endpoint']).toBe('backup');

    const only = await bed.upstream('only', html, html, html);
    const gw = await bed.gateway({ endpoints: [{ url: only.url, name: 'only' }] });
    const failed = await chat(gw.url, gw.auth);
    expect(failed.status).toBe(502);
    expect(failed.json.error.code).toBe('upstream_invalid_response');
  });

  it('a 200 whose body only looks like JSON ({…} that does not parse) is retried too, never relayed', async () => {
    const garbled: Behavior = {
      type: 'custom',
      handle: (_req, res) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"x", this is not json }'),
    };
    await primaryAndBackup(garbled);
    const res = await chat(bed.gw.url, bed.gw.auth);
    expect(res.headers['x-gateway-endpoint']).toBe('backup');
    expect(res.json.choices[0].message.content).toBe('Hello from backup.');

    const only = await bed.upstream('only', garbled, garbled, garbled);
    const gw = await bed.gateway({ endpoints: [{ url: only.url, name: 'only' }] });
    const failed = await chat(gw.url, gw.auth);
    expect(failed.status).toBe(502);
    expect(failed.json.error.code).toBe('upstream_invalid_response');
  });

  it('HTML error pages never become the whole message', async () => {
    const page = `<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>${'x'.repeat(5000)}</body></html>`;
    const only = await bed.upstream(
      'only',
      ...Array.from({ length: 3 }, (): Behavior => ({
        type: 'custom',
        handle: (_q, r) => r.writeHead(502, { 'content-type': 'text/html' }).end(page),
      })),
    );
    const gw = await bed.gateway({ endpoints: [{ url: only.url, name: 'only' }], random: () => 0 });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(502);
    expect(res.json.error.message).toContain('502 Bad Gateway');
    expect(res.json.error.message).toContain('(×3)');
    expect(res.json.error.message.length).toBeLessThan(400);
    expect(res.json.error.message).not.toContain('<html');
  });

  it('gzip-encoded answers are decoded, JSON and streams alike', async () => {
    const gz = (contentType: string, text: string): Behavior => ({
      type: 'custom',
      handle: (_req, res) =>
        res
          .writeHead(200, { 'content-type': contentType, 'content-encoding': 'gzip' })
          .end(zlib.gzipSync(text)),
    });
    const a = await bed.upstream(
      'a',
      gz('application/json', JSON.stringify(completion('test-model', 'zipped answer'))),
      gz(
        'text/event-stream',
        `${streamEvents('test-model', 'zipped stream')
          .map((e) => `data: ${e}\n\n`)
          .join('')}data: [DONE]\n\n`,
      ),
    );
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const json = await chat(gw.url, gw.auth);
    expect(json.json.choices[0].message.content).toBe('zipped answer');
    expect(a.requests[0]!.headers['accept-encoding']).toBe('identity');
    const stream = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(stream.text)).toBe('zipped stream');
    expect(sseData(stream.text).at(-1)).toBe('[DONE]');
  });
});

describe('the end of a stream is [DONE]', () => {
  it('ends the client stream at [DONE] even if the upstream keeps the connection open', async () => {
    const a = await bed.upstream('a', {
      type: 'custom',
      handle: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(
          `${streamEvents('test-model', 'all there')
            .map((e) => `data: ${e}\n\n`)
            .join('')}data: [DONE]\n\n`,
        );
      },
    });
    const gw = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a' }],
      env: { IDLE_TIMEOUT_MS: '30000' },
    });
    const started = Date.now();
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(streamedText(res.text)).toBe('all there');
    expect(res.text).not.toContain('"error"');
  });

  it('an answer that merely mentions [DONE] is not cut short', async () => {
    const text = 'The marker data: [DONE] ends a stream [DONE] but this answer goes on to the end.';
    const a = await bed.upstream('a', { type: 'sse', text });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe(text);
    expect(sseData(res.text).at(-1)).toBe('[DONE]');
  });

  it('data:[DONE] without a space also ends the stream', async () => {
    const events = streamEvents('test-model', 'compact done')
      .map((e) => `data:${e}\n\n`)
      .join('');
    const a = await bed.upstream('a', {
      type: 'custom',
      handle: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`${events}data:[DONE]\n\n`);
      },
    });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe('compact done');
    expect(res.text).not.toContain('"error"');
  });

  it('a comment after [DONE] is not a truncation; [DONE] split across chunks is still seen', async () => {
    const events = streamEvents('test-model', 'split done')
      .map((e) => `data: ${e}\n\n`)
      .join('');
    const a = await bed.upstream('a', {
      type: 'custom',
      handle: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`${events}data: [DO`, () => setTimeout(() => res.end('NE]\n\n: bye\n\n'), 20));
      },
    });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe('split done');
    expect(res.text).not.toContain('"error"');
  });

  it('a JSON answer after heartbeats opened the stream arrives as a chunk the client can read', async () => {
    const a = await bed.upstream('a', {
      type: 'json',
      delayMs: 150,
      body: completion('test-model', 'late json'),
    });
    const gw = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a' }],
      env: { HEARTBEAT_INTERVAL_MS: '30' },
    });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(res.text).toContain(': keep-alive');
    expect(streamedText(res.text)).toBe('late json');
    expect(sseData(res.text).at(-1)).toBe('[DONE]');
  });
});

describe('graceful shutdown that runs out of time', () => {
  it('ends the streams still open with a server_shutting_down error event', async () => {
    const a = await bed.upstream('a', {
      type: 'sse',
      text: 'a b c d e f g h i j k l m n o p q r s t',
      delayMs: 100,
    });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const pending = chat(gw.url, gw.auth, { body: streamBody() });
    await a.waitForRequest(1);
    await gw.gateway.shutdown(150);
    const res = await pending;
    const last = JSON.parse(sseData(res.text).at(-1)!) as { error: { code: string; message: string } };
    expect(last.error.code).toBe('server_shutting_down');
    await a.requests[0]!.closed;
  });
});

describe('access log', () => {
  it('logs a client that went away as client_closed with its endpoint and attempts', async () => {
    const a = await bed.upstream('a', { type: 'hang' });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const controller = new AbortController();
    const pending = chat(gw.url, gw.auth, { signal: controller.signal }).catch(() => undefined);
    await a.waitForRequest(1);
    controller.abort();
    await pending;
    await vi.waitFor(() => expect(gw.logs.some((l) => l.errorCode === 'client_closed')).toBe(true), {
      timeout: 1000,
      interval: 5,
    });
    const line = gw.logs.find((l) => l.errorCode === 'client_closed')!;
    expect(line).toMatchObject({ endpoint: 'a', attempts: 1, model: 'test-model' });
    expect((line.req as { url: string }).url).toBe('/v1/chat/completions');
  });
});
