import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { refusedUrl, streamEvents } from '../helpers/fake-upstream.js';
import { HAS_POSTGRES, HAS_REDIS, postgresSchema, REDIS_URL } from '../helpers/services.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed, type TestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-cache-tests-0123456789';
const OTHER_KEY = 'sk-other-client-key-0123456789';
const TEXT = 'The cached answer has six words.';
const adminHeaders = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

interface Backend {
  name: string;
  cache: 'memory' | 'redis';
  database: 'sqlite' | 'postgres';
  available: boolean;
}

const BACKENDS: Backend[] = [
  { name: 'memory cache, SQLite ledger', cache: 'memory', database: 'sqlite', available: true },
  {
    name: 'Redis cache, PostgreSQL ledger',
    cache: 'redis',
    database: 'postgres',
    available: HAS_REDIS && HAS_POSTGRES,
  },
  { name: 'Redis cache, SQLite ledger', cache: 'redis', database: 'sqlite', available: HAS_REDIS },
  { name: 'memory cache, PostgreSQL ledger', cache: 'memory', database: 'postgres', available: HAS_POSTGRES },
];

async function cacheEnv(bed: TestBed, backend: Backend, prefix = `test-${randomUUID()}:`) {
  const env: Record<string, string> = { CACHE: backend.cache, ADMIN_API_KEY: ADMIN };
  if (backend.cache === 'redis') Object.assign(env, { REDIS_URL, REDIS_PREFIX: prefix });
  if (backend.database === 'postgres')
    env.DATABASE_URL = (await postgresSchema('gw_cache', (fn) => bed.onCleanup(fn))).url;
  return env;
}

const body = (extra: Record<string, unknown> = {}) => ({
  model: 'llama',
  messages: [{ role: 'user', content: 'tell me something' }],
  temperature: 0,
  ...extra,
});

for (const backend of BACKENDS)
  describe.runIf(backend.available)(`response cache (${backend.name})`, () => {
    const bed = useTestBed();

    async function start(options: { yaml?: string; env?: Record<string, string> } = {}) {
      const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
      upstream.defaultBehavior = { type: 'answer', text: TEXT };
      const env: Record<string, string> = {
        ...(await cacheEnv(bed, backend)),
        API_KEY: `${CLIENT_KEY},${OTHER_KEY}`,
        ...options.env,
      };
      if (options.yaml) {
        const dir = await bed.tempDir('gw-cache-');
        await writeFile(`${dir}/gateway.yaml`, options.yaml);
        env.CONFIG_FILE = `${dir}/gateway.yaml`;
      }
      const gw = await bed.gateway({ endpoints: [{ url: upstream.url, name: 'gpu' }], env });
      const sdk = new OpenAI({ apiKey: CLIENT_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 });
      const post = (json: unknown, headers: Record<string, string> = {}, key = CLIENT_KEY) =>
        fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
          body: typeof json === 'string' ? json : JSON.stringify(json),
        });
      /** Stores run after the response closed: wait until the cache holds what the last miss stored. */
      const stored = async (count: number) => {
        const cache = gw.gateway.cache!;
        await expect.poll(() => cache.stored, { timeout: 5_000, interval: 5 }).toBeGreaterThanOrEqual(count);
        // Redis: the SET is on its way; a lookup on the same connection comes after it.
      };
      const records = async () => {
        await gw.gateway.ledger.flush();
        return (await gw.gateway.records.recentUsage(100)).reverse();
      };
      return { upstream, gw, sdk, post, stored, records };
    }

    it('a JSON answer is stored and served again, byte for byte, with X-Cache MISS then HIT (openai SDK)', async () => {
      const { upstream, sdk, stored } = await start();
      const first = await sdk.chat.completions.create(body() as never).withResponse();
      expect(first.response.headers.get('x-cache')).toBe('MISS');
      await stored(1);
      const second = await sdk.chat.completions.create(body() as never).withResponse();
      expect(second.response.headers.get('x-cache')).toBe('HIT');
      expect(second.data).toEqual(first.data);
      expect(second.data.choices[0]!.message.content).toBe(TEXT);
      expect(upstream.requests).toHaveLength(1);
    });

    it('the key does not depend on the order of the body’s fields, nor on stream, stream_options, user or x-gateway', async () => {
      const { upstream, post, stored } = await start();
      const a = await post('{"model":"llama","temperature":0,"messages":[{"role":"user","content":"hi"}]}');
      const firstBytes = await a.text();
      await stored(1);
      const b = await post(
        '{"messages":[{"content":"hi","role":"user"}],"user":"u1","x-gateway":{"metadata":{"a":1}},"temperature":0,"model":"llama"}',
      );
      expect(b.headers.get('x-cache')).toBe('HIT');
      expect(await b.text()).toBe(firstBytes);
      // Anything else that can change the answer is part of the key.
      const c = await post({ model: 'llama', temperature: 0.5, messages: [{ role: 'user', content: 'hi' }] });
      expect(c.headers.get('x-cache')).toBe('MISS');
      await c.text();
      expect(upstream.requests).toHaveLength(2);
    });

    it('a stream is replayed as it was streamed, ending in [DONE]; asked as JSON, it is one completion', async () => {
      const { upstream, post, stored, sdk } = await start();
      const first = await post(body({ stream: true }));
      expect(first.headers.get('x-cache')).toBe('MISS');
      const streamed = await first.text();
      await stored(1);
      const again = await post(body({ stream: true }));
      expect(again.headers.get('x-cache')).toBe('HIT');
      expect(again.headers.get('content-type')).toMatch(/^text\/event-stream/);
      // What the upstream sends a client that did not ask for usage, exactly.
      const expected =
        streamEvents('llama', TEXT)
          .map((e) => `data: ${e}\n\n`)
          .join('') + 'data: [DONE]\n\n';
      expect(streamed).toBe(expected);
      expect(await again.text()).toBe(expected);
      // The openai SDK's stream reader, with the usage chunk it asks for.
      const stream = await sdk.chat.completions.create({
        ...body(),
        stream: true,
        stream_options: { include_usage: true },
      } as never);
      let text = '';
      let usage: unknown;
      for await (const chunk of stream as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) {
        text += chunk.choices[0]?.delta.content ?? '';
        if (chunk.usage) usage = chunk.usage;
      }
      expect(text).toBe(TEXT);
      expect(usage).toEqual({ prompt_tokens: 50, completion_tokens: 7, total_tokens: 57 });
      // Asked without streaming: the chunks put together.
      const json = await sdk.chat.completions.create(body() as never).withResponse();
      expect(json.response.headers.get('x-cache')).toBe('HIT');
      expect(json.data).toMatchObject({
        id: 'chatcmpl-test',
        object: 'chat.completion',
        model: 'llama',
        choices: [{ index: 0, message: { role: 'assistant', content: TEXT }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 50, completion_tokens: 7, total_tokens: 57 },
      });
      expect(upstream.requests).toHaveLength(1);
    });

    it('a JSON answer asked as a stream is replayed as chunks ending in [DONE] (openai SDK)', async () => {
      const { upstream, sdk, post, stored } = await start();
      await sdk.chat.completions.create(body() as never);
      await stored(1);
      const res = await post(body({ stream: true, stream_options: { include_usage: true } }));
      expect(res.headers.get('x-cache')).toBe('HIT');
      const text = await res.text();
      expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
      const stream = await sdk.chat.completions.create({ ...body(), stream: true } as never);
      let content = '';
      let finish: string | null | undefined;
      for await (const chunk of stream as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) {
        content += chunk.choices[0]?.delta.content ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
        expect(chunk.usage ?? null).toBeNull();
      }
      expect(content).toBe(TEXT);
      expect(finish).toBe('stop');
      expect(text).toContain('"choices":[],"usage":{"prompt_tokens":5');
      expect(upstream.requests).toHaveLength(1);
    });

    it('Cache-Control: no-cache skips the lookup but stores; no-store and x-gateway cache:false skip both', async () => {
      const { upstream, post, stored } = await start();
      await (await post(body())).text();
      await stored(1);
      upstream.defaultBehavior = { type: 'answer', text: 'A fresher answer.' };
      const refreshed = await post(body(), { 'cache-control': 'no-cache' });
      expect(refreshed.headers.get('x-cache')).toBe('BYPASS');
      expect(await refreshed.text()).toContain('A fresher answer.');
      await stored(2);
      const hit = await post(body());
      expect(hit.headers.get('x-cache')).toBe('HIT');
      expect(await hit.text()).toContain('A fresher answer.');

      upstream.defaultBehavior = { type: 'answer', text: 'Never kept.' };
      for (const [request, headers] of [
        [body({ seed: 1 }), { 'cache-control': 'no-store' }],
        [body({ seed: 2, 'x-gateway': { cache: false } }), {}],
      ] as const) {
        const res = await post(request, headers);
        expect(res.headers.get('x-cache')).toBe('BYPASS');
        await res.text();
        const { 'x-gateway': _extension, ...plain } = request as Record<string, unknown>;
        const again = await post(plain);
        expect(again.headers.get('x-cache')).toBe('MISS');
        await again.text();
      }
      expect(upstream.requests).toHaveLength(6);
    });

    it('only complete successful answers are stored: an upstream error, a cut stream and an error event are not', async () => {
      const { upstream, post } = await start({ env: { MAX_ATTEMPTS: '1', CONTINUATION: 'false' } });
      upstream.script({ type: 'status', status: 500, body: { error: { message: 'boom' } } });
      const failed = await post(body());
      expect(failed.status).toBe(502);
      expect(failed.headers.get('x-cache')).toBe('MISS');
      await failed.text();
      // Cut before its finish reason (continuation off: the client gets the break as an error event).
      upstream.script({
        type: 'sse',
        events: streamEvents('llama', 'cut short here').slice(0, 3),
        then: 'reset',
      });
      const cut = await post(body({ stream: true, seed: 3 }));
      await cut.text();
      upstream.script({
        type: 'sse',
        events: [streamEvents('llama', 'partial')[0]!, JSON.stringify({ error: { message: 'overloaded' } })],
      });
      const errored = await post(body({ stream: true, seed: 4 }));
      await errored.text();
      // Each asked again goes upstream again.
      for (const request of [body(), body({ stream: true, seed: 3 }), body({ stream: true, seed: 4 })]) {
        const res = await post(request);
        expect(res.headers.get('x-cache')).toBe('MISS');
        expect(res.status).toBe(200);
        await res.text();
      }
      expect(upstream.requests.length).toBeGreaterThanOrEqual(6);
    });

    it('scope key: another key does not see the entry; POST /api/v1/cache/clear empties the cache', async () => {
      const { upstream, post, stored, gw } = await start();
      await (await post(body())).text();
      await stored(1);
      const other = await post(body(), {}, OTHER_KEY);
      expect(other.headers.get('x-cache')).toBe('MISS');
      await other.text();
      await stored(2);
      const clear = await fetch(`${gw.url}/api/v1/cache/clear`, { method: 'POST', headers: adminHeaders });
      expect(clear.status).toBe(200);
      expect(await clear.json()).toEqual({ object: 'cache.clear', cleared: 2, mode: backend.cache });
      const after = await post(body());
      expect(after.headers.get('x-cache')).toBe('MISS');
      await after.text();
      expect(upstream.requests).toHaveLength(3);
      // Client keys never open it.
      const refused = await fetch(`${gw.url}/api/v1/cache/clear`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}` },
      });
      expect(refused.status).toBe(401);
    });

    it('scope global: every key shares one entry', async () => {
      const { upstream, post, stored } = await start({ env: { CACHE_SCOPE: 'global' } });
      await (await post(body())).text();
      await stored(1);
      const other = await post(body(), {}, OTHER_KEY);
      expect(other.headers.get('x-cache')).toBe('HIT');
      await other.text();
      expect(upstream.requests).toHaveLength(1);
    });

    it('scope team: keys of one team share; a key without a team has its own', async () => {
      const { upstream, post, stored, gw } = await start({ env: { CACHE_SCOPE: 'team' } });
      const create = async (payload: object) => {
        const res = await fetch(`${gw.url}/api/v1/${'id' in payload ? 'teams' : 'keys'}`, {
          method: 'POST',
          headers: adminHeaders,
          body: JSON.stringify(payload),
        });
        expect(res.status).toBe(201);
        return (await res.json()) as { key: string };
      };
      await create({ id: 'research' });
      const a = await create({ name: 'a', team: 'research' });
      const b = await create({ name: 'b', team: 'research' });
      const loner = await create({ name: 'loner' });
      await (await post(body(), {}, a.key)).text();
      await stored(1);
      const fromB = await post(body(), {}, b.key);
      expect(fromB.headers.get('x-cache')).toBe('HIT');
      await fromB.text();
      const fromLoner = await post(body(), {}, loner.key);
      expect(fromLoner.headers.get('x-cache')).toBe('MISS');
      await fromLoner.text();
      expect(upstream.requests).toHaveLength(2);
    });

    it('a hit is one ledger record with cached:true, cost 0 and no tokens; /api/v1/usage counts hits and misses', async () => {
      const { post, stored, records, gw } = await start({
        yaml: 'pricing:\n  llama: { inputPerMTok: 1000000, outputPerMTok: 1000000 }\n',
      });
      const miss = await post(body({ metadata_probe: 1 }));
      await miss.text();
      await stored(1);
      const hit = await post(body({ metadata_probe: 1 }));
      await hit.text();
      const [first, second] = await records();
      expect(first).toMatchObject({ cached: false, status: 200, endpoint: 'gpu', promptTokens: 5 });
      expect(first!.cost).toBeGreaterThan(0);
      expect(second).toMatchObject({
        id: hit.headers.get('x-request-id'),
        cached: true,
        status: 200,
        cost: 0,
        promptTokens: 0,
        completionTokens: 0,
        endpoint: null,
        attempts: 0,
        errorCode: null,
      });
      const usage = await fetch(`${gw.url}/api/v1/usage`, { headers: adminHeaders });
      expect(await usage.json()).toMatchObject({ total_requests: 2, cache_hits: 1, cache_misses: 1 });
      // The access line says so too.
      const id = hit.headers.get('x-request-id');
      expect(
        gw.logs.find(
          (l) => l.reqId === id && (l.res as { statusCode?: number } | undefined)?.statusCode === 200,
        ),
      ).toMatchObject({ cache: 'HIT' });
    });

    it('a hit counts as one request against rpm and reserves no tokens against tpm', async () => {
      const longText = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
      const { upstream, post, stored } = await start({
        yaml: 'limits:\n  global: { rpm: 4, tpm: 100 }\n',
      });
      upstream.defaultBehavior = { type: 'answer', text: longText };
      // 5 prompt + 60 completion tokens used: 35 of the minute's 100 left.
      const first = await post(body({ max_tokens: 70 }));
      expect(first.status).toBe(200);
      await first.text();
      await stored(1);
      // A new request reserving its prompt and 70 tokens no longer fits; the cached one does.
      const uncached = await post(body({ max_tokens: 70, seed: 9 }));
      expect(uncached.status).toBe(429);
      expect(((await uncached.json()) as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
      const hit = await post(body({ max_tokens: 70 }));
      expect(hit.status).toBe(200);
      expect(hit.headers.get('x-cache')).toBe('HIT');
      expect(hit.headers.get('x-ratelimit-remaining-requests')).toBe('2');
      await hit.text();
      // rpm 4 (a refusal counts nothing): the miss and three hits pass, the next is refused.
      for (let i = 0; i < 2; i++) {
        const again = await post(body({ max_tokens: 70 }));
        expect(again.status).toBe(200);
        await again.text();
      }
      const refused = await post(body({ max_tokens: 70 }));
      expect(refused.status).toBe(429);
      await refused.text();
      expect(upstream.requests).toHaveLength(1);
    });
  });

describe('response cache: memory store bounds and expiry', () => {
  const bed = useTestBed();

  it('entries expire after CACHE_TTL (injected clock)', async () => {
    let now = 1_700_000_000_000;
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { CACHE: 'memory', CACHE_TTL: '10m' },
      now: () => now,
    });
    const post = () =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...gw.auth, 'content-type': 'application/json' },
        body: JSON.stringify(body()),
      });
    await (await post()).text();
    await expect.poll(() => gw.gateway.cache!.stored).toBe(1);
    now += 9 * 60_000;
    const hit = await post();
    expect(hit.headers.get('x-cache')).toBe('HIT');
    await hit.text();
    now += 2 * 60_000;
    const expired = await post();
    expect(expired.headers.get('x-cache')).toBe('MISS');
    await expired.text();
    expect(upstream.requests).toHaveLength(2);
  });

  it('without CACHE there is no X-Cache header and nothing is kept', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const gw = await bed.gateway({ endpoints: [{ url: upstream.url, name: 'gpu' }] });
    expect(gw.gateway.cache).toBeUndefined();
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...gw.auth, 'content-type': 'application/json' },
        body: JSON.stringify(body()),
      });
      expect(res.headers.get('x-cache')).toBeNull();
      await res.text();
    }
    expect(upstream.requests).toHaveLength(2);
  });
});

describe.runIf(HAS_REDIS)('response cache in Redis', () => {
  const bed = useTestBed();

  it('two replicas share it: an answer one stored is a hit on the other; entries carry CACHE_TTL in Redis', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    upstream.defaultBehavior = { type: 'answer', text: TEXT };
    const prefix = `test-${randomUUID()}:`;
    const env = { CACHE: 'redis', CACHE_TTL: '300s', REDIS_URL, REDIS_PREFIX: prefix, ADMIN_API_KEY: ADMIN };
    const a = await bed.gateway({ endpoints: [{ url: upstream.url, name: 'gpu' }], env });
    const b = await bed.gateway({ endpoints: [{ url: upstream.url, name: 'gpu' }], env });
    const post = (url: string, stream = false) =>
      fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...a.auth, 'content-type': 'application/json' },
        body: JSON.stringify(body({ stream })),
      });
    const first = await post(a.url, true);
    expect(first.headers.get('x-cache')).toBe('MISS');
    const streamed = await first.text();
    await expect.poll(() => a.gateway.cache!.stored).toBe(1);
    const redis = new Redis(REDIS_URL);
    bed.onCleanup(() => redis.quit());
    await expect.poll(async () => (await redis.keys(`${prefix}cache:*`)).length).toBe(1);
    const [key] = await redis.keys(`${prefix}cache:*`);
    const ttl = await redis.pttl(key!);
    expect(ttl).toBeGreaterThan(290_000);
    expect(ttl).toBeLessThanOrEqual(300_000);
    const onB = await post(b.url, true);
    expect(onB.headers.get('x-cache')).toBe('HIT');
    expect(await onB.text()).toBe(streamed);
    const jsonOnB = await post(b.url);
    expect(jsonOnB.headers.get('x-cache')).toBe('HIT');
    const completion = (await jsonOnB.json()) as { choices: Array<{ message: { content: string } }> };
    expect(completion.choices[0]!.message.content).toBe(TEXT);
    expect(upstream.requests).toHaveLength(1);
    // Clearing on one replica clears the shared cache.
    const clear = await fetch(`${b.url}/api/v1/cache/clear`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(await clear.json()).toMatchObject({ cleared: 1, mode: 'redis' });
    const again = await post(a.url);
    expect(again.headers.get('x-cache')).toBe('MISS');
    await again.text();
  });

  it('an unreachable Redis is a miss, never an error: requests go upstream and the status says so', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const dead = (await refusedUrl()).replace('http://', 'redis://');
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { CACHE: 'redis', REDIS_URL: dead, ADMIN_API_KEY: ADMIN },
    });
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...gw.auth, 'content-type': 'application/json' },
        body: JSON.stringify(body()),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-cache')).toBe('MISS');
      await res.text();
    }
    expect(upstream.requests).toHaveLength(2);
    const status = (await (
      await fetch(`${gw.url}/api/v1/providers/status`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as { cache: { mode: string; reachable: boolean } };
    expect(status.cache).toMatchObject({ mode: 'redis', reachable: false });
    expect(gw.rawLogs()).toContain('response cache unreachable');
  });
});
