/**
 * Every row of the outcome table (the README's "What happens when an upstream fails"), against real upstream servers, JSON and streaming.
 */
import { describe, expect, it, vi } from 'vitest';
import { refusedUrl, streamEvents, type Behavior, type FakeUpstream } from '../helpers/fake-upstream.js';
import { chat, sseData, streamBody, streamedText } from '../helpers/http.js';
import { startSilentServer } from '../helpers/silent-tls.js';
import type { EndpointSpec } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();

/** Primary (priority 1) scripted to fail, healthy backup at priority 2. */
async function primaryAndBackup(
  failing: EndpointSpec | Behavior,
  env: Record<string, string> = {},
): Promise<{ primary: FakeUpstream | undefined; backup: FakeUpstream }> {
  const backup = await bed.upstream('backup');
  let primary: FakeUpstream | undefined;
  let primarySpec: EndpointSpec;
  if ('type' in failing) {
    primary = await bed.upstream('primary', failing, failing);
    primarySpec = { url: primary.url, name: 'primary', priority: 1, models: ['test-model'] };
  } else {
    primarySpec = { name: 'primary', priority: 1, models: ['test-model'], ...failing };
  }
  await bed.gateway({
    endpoints: [primarySpec, { url: backup.url, name: 'backup', priority: 2 }],
    env: { FIRST_BYTE_TIMEOUT_MS: '300', CONNECT_TIMEOUT_MS: '300', ...env },
  });
  return { primary, backup };
}

const modes = [
  { mode: 'json', body: undefined },
  { mode: 'stream', body: streamBody() },
] as const;

describe.each(modes)('before commit, failures move on to the next endpoint ($mode)', ({ mode, body }) => {
  async function expectServedByBackup() {
    const res = await chat(bed.gw.url, bed.gw.auth, { body });
    expect(res.status).toBe(200);
    expect(res.headers['x-gateway-endpoint']).toBe('backup');
    expect(res.headers['x-gateway-attempts']).toBe('2');
    if (mode === 'stream') expect(streamedText(res.text)).toBe('Hello from backup.');
    else expect(res.json.choices[0].message.content).toBe('Hello from backup.');
    return res;
  }

  it('connection refused', async () => {
    await primaryAndBackup({ url: await refusedUrl() });
    await expectServedByBackup();
    expect(bed.gw.gateway.registry.health.get('primary').lastError?.kind).toBe('connect');
  });

  it('connection reset', async () => {
    const { primary } = await primaryAndBackup({ type: 'reset' });
    await expectServedByBackup();
    expect(primary!.requests).toHaveLength(1);
  });

  it('DNS failure', async () => {
    await primaryAndBackup({ url: 'http://gpu-a.nonexistent.invalid:8000' });
    await expectServedByBackup();
    expect(bed.gw.gateway.registry.health.get('primary').lastError?.message).toMatch(/DNS|not found/);
  });

  it('connect timeout (TLS handshake never answered)', async () => {
    const silent = await startSilentServer();
    bed.onCleanup(silent.stop);
    await primaryAndBackup({ url: silent.url, timeouts: { connectMs: 150 } });
    await expectServedByBackup();
    expect(silent.connections()).toBeGreaterThan(0);
    expect(bed.gw.gateway.registry.health.get('primary').lastError?.kind).toBe('timeout');
  });

  it('first-byte timeout (no response at all)', async () => {
    const { primary } = await primaryAndBackup({ type: 'hang' });
    await expectServedByBackup();
    // The abandoned attempt's connection is closed, not left generating.
    await primary!.requests[0]!.closed;
  });

  it('first-byte timeout (headers sent, no first token)', async () => {
    await primaryAndBackup({ type: 'hang-after-headers' });
    await expectServedByBackup();
  });

  it('empty 200 response', async () => {
    await primaryAndBackup({ type: 'empty' });
    await expectServedByBackup();
  });

  it.each([500, 502, 503, 504, 408])('HTTP %i', async (status) => {
    await primaryAndBackup({ type: 'status', status });
    await expectServedByBackup();
    expect(bed.gw.gateway.registry.health.get('primary').consecutiveFailures).toBe(1);
  });

  it('429: moves on and the endpoint cools down for its Retry-After, not counted as an error', async () => {
    const { primary } = await primaryAndBackup({
      type: 'status',
      status: 429,
      headers: { 'retry-after': '30' },
    });
    await expectServedByBackup();
    const health = bed.gw.gateway.registry.health.get('primary');
    expect(health.consecutiveFailures).toBe(0);
    expect(health.state(Date.now())).toBe('cooling-down');
    // While cooling down the primary gets no traffic at all.
    const second = await chat(bed.gw.url, bed.gw.auth, { body });
    expect(second.headers['x-gateway-endpoint']).toBe('backup');
    expect(second.headers['x-gateway-attempts']).toBe('1');
    expect(primary!.requests).toHaveLength(1);
  });

  it.each([401, 403])(
    'HTTP %i from upstream (our key is wrong): next endpoint, logged as misconfiguration',
    async (status) => {
      await primaryAndBackup({ type: 'status', status });
      await expectServedByBackup();
      const line = bed.gw.logs.find((l) => String(l.msg).includes('endpoint is misconfigured'));
      expect(line).toMatchObject({ endpoint: 'primary', level: 'error' });
    },
  );

  it('404 model not found on that upstream: next endpoint, model removed from it', async () => {
    const backup = await bed.upstream('backup');
    const primary = await bed.upstream('primary', { type: 'status', status: 404 });
    const gw = await bed.gateway({
      endpoints: [
        { url: primary.url, name: 'primary', priority: 1 },
        { url: backup.url, name: 'backup', priority: 2 },
      ],
    });
    expect(gw.gateway.registry.serving('test-model').map((e) => e.config.name)).toEqual([
      'primary',
      'backup',
    ]);
    await expectServedByBackup();
    expect(gw.gateway.registry.serving('test-model').map((e) => e.config.name)).toEqual(['backup']);
    // Discovery puts it back when the upstream lists it again.
    await gw.gateway.discovery.refresh();
    expect(gw.gateway.registry.serving('test-model')).toHaveLength(2);
  });
});

describe.each(modes)('the request’s own fault is returned to the client ($mode)', ({ body }) => {
  it.each([400, 413, 422])('HTTP %i keeps status and message; the endpoint stays healthy', async (status) => {
    const { primary, backup } = await primaryAndBackup({
      type: 'status',
      status,
      body: {
        error: {
          message: `This model's maximum context length is 8192 tokens (${status})`,
          type: 'invalid_request_error',
          param: 'messages',
          code: null,
        },
      },
    });
    const res = await chat(bed.gw.url, bed.gw.auth, { body });
    expect(res.status).toBe(status);
    expect(res.json.error.message).toBe(`This model's maximum context length is 8192 tokens (${status})`);
    expect(res.json.error.param).toBe('messages');
    expect(primary!.requests).toHaveLength(1);
    expect(backup.requests).toHaveLength(0);
    expect(bed.gw.gateway.registry.health.get('primary').consecutiveFailures).toBe(0);
  });
});

describe('when every candidate fails', () => {
  it('503 with Retry-After when no endpoint is reachable', async () => {
    const gw = await bed.gateway({
      endpoints: [
        { url: await refusedUrl(), name: 'a', models: ['test-model'] },
        { url: await refusedUrl(), name: 'b', models: ['test-model'] },
      ],
    });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(503);
    expect(res.json.error.code).toBe('no_endpoint_available');
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(res.json.error.message).toMatch(/connection refused/);
  });

  it('502 when the upstreams answered badly (5xx everywhere)', async () => {
    const a = await bed.upstream('a', { type: 'status', status: 500 }, { type: 'status', status: 500 });
    const b = await bed.upstream('b', { type: 'status', status: 502 }, { type: 'status', status: 502 });
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a' },
        { url: b.url, name: 'b' },
      ],
      random: () => 0,
    });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(502);
    expect(res.json.error.code).toBe('upstream_error');
    expect(res.headers['x-gateway-attempts']).toBeUndefined();
    expect(a.requests.length + b.requests.length).toBe(3);
  });

  it('502 when every upstream rejects the gateway’s credentials', async () => {
    const a = await bed.upstream('a', { type: 'status', status: 401 });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a', apiKey: 'sk-wrong' }] });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(502);
    expect(res.json.error.code).toBe('upstream_auth_error');
    expect(a.requests).toHaveLength(1);
  });

  it('a single endpoint that says 429 with a short Retry-After is waited for and retried', async () => {
    const a = await bed.upstream('a', { type: 'status', status: 429, headers: { 'retry-after-ms': '150' } });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const started = Date.now();
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(200);
    expect(res.headers['x-gateway-attempts']).toBe('2');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('a long Retry-After is passed on as 503 with that Retry-After', async () => {
    const a = await bed.upstream('a', { type: 'status', status: 429, headers: { 'retry-after': '30' } });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(503);
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(29);
    expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(30);
    expect(a.requests).toHaveLength(1);
  });

  it('all endpoints 404 for the model: 404 model_not_found', async () => {
    const a = await bed.upstream('a', { type: 'status', status: 404 });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe('model_not_found');
  });

  it('MAX_ATTEMPTS bounds the number of upstream attempts', async () => {
    const fail: Behavior = { type: 'status', status: 500 };
    const a = await bed.upstream('a', fail, fail, fail, fail, fail);
    const gw = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a' }],
      env: { MAX_ATTEMPTS: '2' },
      random: () => 0,
    });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(502);
    expect(a.requests).toHaveLength(2);
  });

  it('503 with the upstreams’ Retry-After when every endpoint answers 503 or 429 (not a bad gateway)', async () => {
    const a = await bed.upstream('a', { type: 'status', status: 503, headers: { 'retry-after': '7' } });
    const b = await bed.upstream('b', { type: 'status', status: 429, headers: { 'retry-after': '4' } });
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a' },
        { url: b.url, name: 'b', priority: 2 },
      ],
      env: { MAX_ATTEMPTS: '2' },
      random: () => 0,
    });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('4');
    expect(res.json.error.code).toBe('no_endpoint_available');
    expect(res.json.error.message).toContain('HTTP 503');
  });

  it('502 when one upstream answered 500 and another 503: a broken answer outweighs "unavailable"', async () => {
    const a = await bed.upstream('a', { type: 'status', status: 500 });
    const b = await bed.upstream('b', { type: 'status', status: 503 });
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a' },
        { url: b.url, name: 'b', priority: 2 },
      ],
      env: { MAX_ATTEMPTS: '2' },
      random: () => 0,
    });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(502);
    expect(res.headers['retry-after']).toBeUndefined();
  });

  it('REQUEST_TIMEOUT_MS bounds the whole request: 504', async () => {
    const a = await bed.upstream('a', { type: 'hang' });
    const gw = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a' }],
      env: { REQUEST_TIMEOUT_MS: '200' },
    });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(504);
    expect(res.json.error.code).toBe('request_timeout');
    await a.requests[0]!.closed;
  });
});

describe('after commit', () => {
  /** The answer's events up to its text: no finish_reason chunk, no [DONE]. */
  const unfinished = (text: string) => streamEvents('test-model', text).slice(0, -1);

  /** Continuation off: the break itself is what the client sees (continuation has tests of its own). */
  async function brokenStream(behavior: Behavior, extraEnv: Record<string, string> = {}) {
    const env = { CONTINUATION: 'false', ...extraEnv };
    const a = await bed.upstream('a', behavior);
    const b = await bed.upstream('b');
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a', priority: 1 },
        { url: b.url, name: 'b', priority: 2 },
      ],
      env,
    });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    const events = sseData(res.text);
    return {
      res,
      events,
      a,
      b,
      last: (events.at(-1) === '[DONE]' ? {} : JSON.parse(events.at(-1)!)) as {
        error?: { message: string; code: string };
      },
    };
  }

  it('an upstream that dies mid-stream ends the client stream with an SSE error event, no [DONE]', async () => {
    const { res, events, last, b } = await brokenStream({
      type: 'sse',
      events: unfinished('one two three'),
      then: 'reset',
    });
    expect(res.status).toBe(200);
    expect(streamedText(res.text.slice(0, res.text.lastIndexOf('data: {"error"')))).toBe('one two three');
    expect(events).not.toContain('[DONE]');
    expect(last.error?.code).toBe('upstream_stream_error');
    expect(last.error?.message).toMatch(/incomplete/);
    // No retry after commit.
    expect(b.requests).toHaveLength(0);
    expect(bed.gw.gateway.registry.health.get('a').lastError?.kind).toBe('stream-error');
  });

  it('a stream that stalls longer than IDLE_TIMEOUT_MS ends with an idle-timeout error event', async () => {
    const { events, last, a } = await brokenStream(
      { type: 'sse', events: unfinished('one two'), then: 'hang' },
      { IDLE_TIMEOUT_MS: '150' },
    );
    expect(events).not.toContain('[DONE]');
    expect(last.error?.code).toBe('upstream_idle_timeout');
    await a.requests[0]!.closed;
  });

  it('a stream closed cleanly but without [DONE] is reported as truncated, never as a clean end', async () => {
    const { events, last } = await brokenStream({
      type: 'sse',
      events: unfinished('one two'),
      then: 'end-without-done',
    });
    expect(events).not.toContain('[DONE]');
    expect(last.error?.code).toBe('upstream_stream_truncated');
  });

  it('a stream that breaks after its finish_reason ends with [DONE]: only the [DONE] line was missing', async () => {
    const { res, events, b } = await brokenStream({ type: 'sse', text: 'one two', then: 'reset' });
    expect(streamedText(res.text)).toBe('one two');
    expect(events.at(-1)).toBe('[DONE]');
    expect(res.text).not.toContain('"error"');
    expect(b.requests).toHaveLength(0);
  });

  it('the gateway keeps serving after broken streams', async () => {
    await brokenStream({ type: 'sse', events: unfinished('x'), then: 'reset' });
    const ok = await chat(bed.gw.url, bed.gw.auth, { body: streamBody() });
    expect(streamedText(ok.text)).toMatch(/Hello from/);
  });
});

describe('client disconnects abort the upstream request at once', () => {
  async function abortWhen(
    behavior: Behavior,
    whenArrived: (u: FakeUpstream) => Promise<unknown>,
    body?: unknown,
  ) {
    const a = await bed.upstream('a', behavior);
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const controller = new AbortController();
    const pending = chat(gw.url, gw.auth, { body, signal: controller.signal }).catch((e: Error) => e);
    await whenArrived(a);
    const abortedAt = Date.now();
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    const closedAt = await a.requests[0]!.closed;
    expect(closedAt - abortedAt).toBeLessThan(100);
    await vi.waitFor(() => expect(gw.gateway.completions.active).toBe(0), { timeout: 1000, interval: 5 });
    return a;
  }

  it('before response headers', async () => {
    await abortWhen({ type: 'hang' }, (u) => u.waitForRequest(1));
  });

  it('mid-stream', async () => {
    await abortWhen(
      { type: 'sse', text: 'a b c d e f g h i j k l m n o p', delayMs: 40 },
      (u) => u.waitForRequest(1),
      streamBody(),
    );
  });

  it('during a wait for Retry-After: no further attempt is made', async () => {
    const a = await bed.upstream('a', { type: 'status', status: 429, headers: { 'retry-after-ms': '3000' } });
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const controller = new AbortController();
    const pending = chat(gw.url, gw.auth, { signal: controller.signal }).catch((e: Error) => e);
    await a.waitForRequest(1);
    await vi.waitFor(() => expect(gw.gateway.registry.health.get('a').cooldownUntil).toBeGreaterThan(0), {
      timeout: 1000,
      interval: 5,
    });
    const abortedAt = Date.now();
    controller.abort();
    await pending;
    await vi.waitFor(() => expect(gw.gateway.completions.active).toBe(0), { timeout: 1000, interval: 5 });
    expect(Date.now() - abortedAt).toBeLessThan(100);
    expect(a.requests).toHaveLength(1);
  });
});
