import { writeFile } from 'node:fs/promises';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { refusedUrl } from '../helpers/fake-upstream.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-tests-0123456789';
const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
const T0 = Date.parse('2026-12-05T12:00:00Z');

describe('limits: rpm, tpm, maxParallel and budgets at the key, team, model and global scopes', () => {
  const bed = useTestBed();

  async function start(options: { yaml?: string; env?: Record<string, string>; models?: string[] } = {}) {
    const clock = { t: T0 };
    const upstream = await bed.upstream({ name: 'gpu', models: options.models ?? ['llama', 'qwen'] });
    const env: Record<string, string> = { ADMIN_API_KEY: ADMIN, ...options.env };
    if (options.yaml) {
      const dir = await bed.tempDir('gw-limits-');
      await writeFile(`${dir}/gateway.yaml`, options.yaml);
      env.CONFIG_FILE = `${dir}/gateway.yaml`;
    }
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env,
      now: () => clock.t,
    });
    const key = async (body: Record<string, unknown>) => {
      const res = await fetch(`${gw.url}/api/v1/keys`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify(body),
      });
      const json = (await res.json()) as { key: string; id: string; error?: { code: string } };
      if (res.status !== 201) throw new Error(`key not created: ${JSON.stringify(json)}`);
      return json;
    };
    const post = (k: string, body: Record<string, unknown> = {}, signal?: AbortSignal) =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'hi' }], ...body }),
        signal,
      });
    return { upstream, gw, clock, key, post };
  }

  it('rpm: exactly the limit per rolling minute; 429 says which limit of which scope and when; x-ratelimit-* headers', async () => {
    const { key, post, clock } = await start();
    const k = await key({ name: 'ci', limits: { rpm: 3 } });
    const answers = [];
    for (let i = 0; i < 3; i++) {
      answers.push(await post(k.key));
      clock.t += 1_000;
    }
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers[0]!.headers.get('x-ratelimit-limit-requests')).toBe('3');
    expect(answers.map((a) => a.headers.get('x-ratelimit-remaining-requests'))).toEqual(['2', '1', '0']);
    // A minute and a bucket (a tenth of a second): the window counts in buckets, never less than a minute.
    expect(answers[2]!.headers.get('x-ratelimit-reset-requests')).toBe('1m0.1s');

    const refused = await post(k.key);
    expect(refused.status).toBe(429);
    // The first request (t0) leaves the window at the end of its bucket + 60 s (t0 + 60.1 s); now is
    // t0 + 3 s: 57.1 s, in whole seconds.
    expect(refused.headers.get('retry-after')).toBe('58');
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    const body = (await refused.json()) as { error: Record<string, string> };
    expect(body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(body.error.message).toBe(
      `Rate limit reached for key 'ci' (${k.id}): 3 requests per minute. Try again in 58 s.`,
    );

    clock.t = T0 + 60_099;
    expect((await post(k.key)).status).toBe(429);
    clock.t = T0 + 60_100;
    expect((await post(k.key)).status).toBe(200);
  });

  it('the openai SDK sees a RateLimitError with the headers', async () => {
    const { key, gw } = await start();
    const k = await key({ name: 'sdk', limits: { rpm: 1 } });
    const sdk = new OpenAI({ apiKey: k.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    await sdk.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'x' }] });
    const err = await sdk.chat.completions
      .create({ model: 'llama', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after')).toBe('61');
  });

  it('tpm: reserved from prompt + max_tokens, corrected by the real usage; too large for the limit is 400', async () => {
    const { key, post, upstream } = await start();
    const k = await key({ name: 'tok', limits: { tpm: 1_000 } });
    const tooBig = await post(k.key, { max_tokens: 2_000 });
    expect(tooBig.status).toBe(400);
    expect(((await tooBig.json()) as { error: { code: string } }).error.code).toBe('request_too_large');

    // A JSON answer reports its usage (a handful of tokens): the 700 reserved shrink to that.
    const first = await post(k.key, { max_tokens: 700 });
    expect(first.status).toBe(200);
    expect(Number(first.headers.get('x-ratelimit-remaining-tokens'))).toBeLessThan(300);
    await first.text();
    const second = await post(k.key, { max_tokens: 700 });
    expect(second.status).toBe(200);
    await second.text();
    // A stream whose last chunk reports usage (stream_options.include_usage) is corrected too.
    const reported = await post(k.key, {
      max_tokens: 700,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(reported.status).toBe(200);
    expect(await reported.text()).toContain('"usage"');
    // A stream without usage (an upstream that ignores stream_options) is corrected with an estimate.
    upstream.script({ type: 'sse' });
    const unreported = await post(k.key, { max_tokens: 700, stream: true });
    expect(unreported.status).toBe(200);
    await unreported.text();
    // While a request holds its reservation, what does not fit beside it is refused.
    upstream.script({ type: 'sse', then: 'hang' });
    const abort = new AbortController();
    const holding = await post(k.key, { max_tokens: 800, stream: true }, abort.signal);
    expect(holding.status).toBe(200);
    const refused = await post(k.key, { max_tokens: 300 });
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain(
      '1000 tokens per minute',
    );
    abort.abort();
  });

  it('maxParallel: a fourth request never reaches the upstream; a client abort gives the slot back', async () => {
    const { key, post, upstream } = await start();
    const k = await key({ name: 'par', limits: { maxParallel: 3 } });
    upstream.script(
      { type: 'sse', then: 'hang' },
      { type: 'sse', then: 'hang' },
      { type: 'sse', then: 'hang' },
    );
    const aborts = [new AbortController(), new AbortController(), new AbortController()];
    const open = await Promise.all(aborts.map((a) => post(k.key, { stream: true }, a.signal)));
    expect(open.map((r) => r.status)).toEqual([200, 200, 200]);
    await upstream.waitForRequest(3);

    const fourth = await post(k.key, { stream: true });
    expect(fourth.status).toBe(429);
    const body = (await fourth.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('concurrency_limit_exceeded');
    expect(body.error.message).toContain('at most 3 requests in flight');
    expect(upstream.requests).toHaveLength(3);

    aborts[0]!.abort();
    await upstream.requests[0]!.closed;
    const fifth = await post(k.key);
    expect(fifth.status).toBe(200);
    await fifth.text();
    for (const a of aborts.slice(1)) a.abort();
  });

  it('maxParallel: errors release their slot too', async () => {
    const { key, post, upstream } = await start();
    const k = await key({ name: 'err', limits: { maxParallel: 1 } });
    upstream.script({ type: 'status', status: 400, body: { error: { message: 'bad' } } });
    expect((await post(k.key)).status).toBe(400);
    expect((await post(k.key)).status).toBe(200);
  });

  it('budget: a request that would start past the budget gets insufficient_quota until the period ends', async () => {
    const { key, post } = await start({
      yaml: 'pricing:\n  llama: { inputPerMTok: 100000, outputPerMTok: 100000 }\n',
    });
    // Each answer: 5 prompt tokens + a few completion tokens, at 0.1 per token: about 1 per request.
    const k = await key({ name: 'spender', limits: { budget: { amount: 1.5, period: 'day' } } });
    expect((await post(k.key)).status).toBe(200);
    expect((await post(k.key)).status).toBe(200);
    const refused = await post(k.key);
    expect(refused.status).toBe(429);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('insufficient_quota');
    expect(body.error.message).toContain('a budget of 1.5 this day');
    // Noon: 12 h to the end of the UTC day.
    expect(Number(refused.headers.get('retry-after'))).toBe(12 * 3_600);
  });

  it('team limits are shared by the team’s keys; the message names the team', async () => {
    const { key, post, gw } = await start();
    await fetch(`${gw.url}/api/v1/teams`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ id: 'lab', limits: { rpm: 2 } }),
    });
    const a = await key({ name: 'a', team: 'lab' });
    const b = await key({ name: 'b', team: 'lab' });
    expect((await post(a.key)).status).toBe(200);
    expect((await post(b.key)).status).toBe(200);
    const refused = await post(a.key);
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain("team 'lab'");
  });

  it('global and model limits from the configuration apply to static keys too; refused requests count against nothing', async () => {
    const { post } = await start({
      yaml: 'limits:\n  global: { rpm: 3 }\n  models:\n    qwen: { rpm: 1 }\n',
    });
    expect((await post(CLIENT_KEY, { model: 'qwen' })).status).toBe(200);
    const refused = await post(CLIENT_KEY, { model: 'qwen' });
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain(
      "model 'qwen'",
    );
    // The refused qwen request took nothing from the global 3.
    expect((await post(CLIENT_KEY)).status).toBe(200);
    expect((await post(CLIENT_KEY)).status).toBe(200);
    const global = await post(CLIENT_KEY);
    expect(global.status).toBe(429);
    expect(((await global.json()) as { error: { message: string } }).error.message).toContain('the gateway');
  });

  it('with several workers and no REDIS_URL, creating a limit is a 409 naming REDIS_URL', async () => {
    const { gw } = await start({ env: { WORKERS: '2' } });
    const res = await fetch(`${gw.url}/api/v1/keys`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'x', limits: { rpm: 1 } }),
    });
    expect(res.status).toBe(409);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('limits_need_redis');
    expect(body.error.message).toContain('REDIS_URL');
    // Without limits the key is fine.
    const plain = await fetch(`${gw.url}/api/v1/keys`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'y' }),
    });
    expect(plain.status).toBe(201);
  });

  it('Redis unreachable: limits fail open by default (logged once), or closed with 503 limits_unavailable', async () => {
    const dead = (await refusedUrl()).replace('http', 'redis');
    const open = await start({ env: { REDIS_URL: dead }, yaml: 'limits:\n  global: { rpm: 1 }\n' });
    for (let i = 0; i < 3; i++) expect((await open.post(CLIENT_KEY)).status).toBe(200);
    const outage = open.gw.logs.filter((l) => String(l.msg).startsWith('limit counters unreachable'));
    expect(outage).toHaveLength(1);
    const status = await fetch(`${open.gw.url}/api/v1/providers/status`, { headers: admin }).then((r) =>
      r.json(),
    );
    expect((status as { limits: unknown }).limits).toMatchObject({ backend: 'redis', reachable: false });

    const closed = await start({
      env: { REDIS_URL: dead },
      yaml: 'limits:\n  global: { rpm: 1 }\n  onStoreError: closed\n',
    });
    const refused = await closed.post(CLIENT_KEY);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('limits_unavailable');
  });
});

describe('limits: what failed requests and streams count', () => {
  const bed = useTestBed();

  it('a request that got no answer gives its tpm reservation back; a stream spends its budget', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const dir = await bed.tempDir('gw-limits-');
    await writeFile(
      `${dir}/gateway.yaml`,
      'pricing:\n  llama: { inputPerMTok: 100000, outputPerMTok: 100000 }\nlimits:\n  defaultReserveTokens: 100\n',
    );
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { ADMIN_API_KEY: ADMIN, CONFIG_FILE: `${dir}/gateway.yaml`, MAX_ATTEMPTS: '1' },
    });
    const created = await fetch(`${gw.url}/api/v1/keys`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'k', limits: { tpm: 1_000, budget: { amount: 1.5, period: 'day' } } }),
    }).then((r) => r.json() as Promise<{ key: string }>);
    const post = (body: Record<string, unknown>) =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${created.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'hi' }], ...body }),
      });
    // Unknown model and an upstream 500: no answer, so nothing stays reserved.
    expect((await post({ model: 'nonexistent' })).status).toBe(404);
    upstream.script({ type: 'status', status: 500, body: { error: { message: 'boom' } } });
    expect((await post({})).status).toBe(502);
    const probe = await post({ max_tokens: 10 });
    // Only this request's own reservation (10 + a few for the prompt) is taken.
    expect(Number(probe.headers.get('x-ratelimit-remaining-tokens'))).toBeGreaterThan(980);
    await probe.text();
    // Streams report usage to the gateway (asked upstream) and spend their budget: two at 57 tokens × 0.1.
    const first = await post({ stream: true });
    await first.text();
    const second = await post({ stream: true });
    expect(second.status).toBe(429);
    expect(((await second.json()) as { error: { code: string } }).error.code).toBe('insufficient_quota');
  });
});
