import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-query-tests-0123456789';

describe('POST /gateway/query', () => {
  const bed = useTestBed();

  async function start(env: Record<string, string> = {}) {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama', 'qwen'] });
    upstream.defaultBehavior = { type: 'answer', text: 'the answer is 42' };
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { ADMIN_API_KEY: ADMIN, ...env },
    });
    const query = async (body: unknown, authorization = `Bearer ${CLIENT_KEY}`) => {
      const res = await fetch(`${gw.url}/gateway/query`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
    };
    return { upstream, gw, query };
  }

  it('answers one string for a prompt, through the chat pipeline: one ledger record, the bare key works too', async () => {
    const { upstream, gw, query } = await start();
    const r = await query({ prompt: 'What is the answer?', system: 'Be brief.', max_tokens: 50 });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      cached: false,
      response: 'the answer is 42',
      model: 'llama',
      usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
      finish_reason: 'stop',
    });
    expect(r.headers.get('x-gateway-endpoint')).toBe('gpu');
    // The first model listed, the system message first, max_tokens passed on.
    expect(upstream.requests[0]!.json).toEqual({
      model: 'llama',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'What is the answer?' },
      ],
      max_tokens: 50,
    });
    // As the seed's clients send it: the bare key.
    const bare = await query({ prompt: 'again', model: 'qwen' }, CLIENT_KEY);
    expect(bare).toMatchObject({ status: 200, body: { model: 'qwen', response: 'the answer is 42' } });
    expect((await query({ prompt: 'x' }, 'not-a-key-0123456789')).status).toBe(401);
    expect((await query({ prompt: 'x' }, '')).status).toBe(401);

    const records = (await (
      await fetch(`${gw.url}/api/v1/usage/records`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as { data: Array<{ model: string; status: number }> };
    // One record per query that reached the pipeline (the refused keys never did).
    expect(records.data.map((d) => [d.model, d.status])).toEqual([
      ['qwen', 200],
      ['llama', 200],
    ]);
  });

  it('says when the answer came from the cache; query.defaultModel picks the model', async () => {
    const dir = await bed.tempDir('gw-query-');
    await writeFile(`${dir}/gateway.yaml`, 'query:\n  defaultModel: qwen\n');
    const { query, upstream } = await start({ CACHE: 'memory', CONFIG_FILE: `${dir}/gateway.yaml` });
    const first = await query({ prompt: 'same question' });
    const second = await query({ prompt: 'same question' });
    expect(first.body).toMatchObject({ cached: false, model: 'qwen' });
    expect(second.body).toMatchObject({ cached: true, model: 'qwen', response: 'the answer is 42' });
    expect(upstream.requests).toHaveLength(1);
  });

  it('bad bodies are 400s naming the field; an upstream failure comes back as the chat route answered it', async () => {
    const { query, upstream } = await start();
    expect(await query({})).toMatchObject({ status: 400, body: { error: { param: 'prompt' } } });
    expect(await query({ prompt: 'x', temperature: 2 })).toMatchObject({
      status: 400,
      body: { error: { param: 'temperature' } },
    });
    expect(await query({ prompt: 'x', provider: 'nope' })).toMatchObject({
      status: 400,
      body: { error: { param: 'provider' } },
    });
    expect(await query({ prompt: 'x', max_tokens: 0 })).toMatchObject({
      status: 400,
      body: { error: { param: 'max_tokens' } },
    });
    expect(await query({ prompt: 'x', model: 'no-such-model' })).toMatchObject({
      status: 404,
      body: { error: { code: 'model_not_found' } },
    });
    // A provider is a preference: with none of that type, any endpoint answers.
    expect(await query({ prompt: 'x', provider: 'anthropic' })).toMatchObject({ status: 200 });
    upstream.defaultBehavior = { type: 'status', status: 503 };
    const failed = await query({ prompt: 'y' });
    expect(failed.status).toBe(503);
    expect(failed.body.error.code).toBeTypeOf('string');
  });

  it('a client that leaves stops the upstream request; limits headers come through; the default model is one the caller may use', async () => {
    const { upstream, gw, query } = await start();
    upstream.defaultBehavior = { type: 'hang' };
    const leaving = new AbortController();
    const pending = fetch(`${gw.url}/gateway/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'never answered' }),
      signal: leaving.signal,
    }).catch(() => undefined);
    await expect.poll(() => upstream.requests.length).toBe(1);
    leaving.abort();
    await pending;
    // The upstream sees its request closed (as when a chat client leaves).
    await upstream.requests[0]!.closed;

    upstream.defaultBehavior = { type: 'answer', text: 'ok' };
    const created = await fetch(`${gw.url}/api/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'q', models: ['qwen'], limits: { rpm: 10 } }),
    });
    const { key } = (await created.json()) as { key: string };
    const r = await query({ prompt: 'hello' }, `Bearer ${key}`);
    // Not the first model listed (llama): the first this key may use.
    expect(r).toMatchObject({ status: 200, body: { model: 'qwen' } });
    expect(r.headers.get('x-ratelimit-limit-requests')).toBe('10');
    expect(r.headers.get('x-ratelimit-remaining-requests')).toBe('9');
  });

  it('provider steers: that provider’s endpoint first, the usual order after it', async () => {
    const a = await bed.upstream({ name: 'a', models: ['llama'] });
    const b = await bed.upstream({ name: 'b', models: ['llama'] });
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a', priority: 1 },
        // A Groq preset pointed at a local fake (the preset's URL would be Groq's).
        { url: b.url, name: 'b', priority: 2, provider: 'groq' },
      ],
    });
    const ask = async (provider?: string) => {
      const res = await fetch(`${gw.url}/gateway/query`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'p', ...(provider ? { provider } : {}) }),
      });
      return { status: res.status, endpoint: res.headers.get('x-gateway-endpoint') };
    };
    expect(await ask()).toEqual({ status: 200, endpoint: 'a' });
    expect(await ask('groq')).toEqual({ status: 200, endpoint: 'b' });
    expect(await ask('openai-compatible')).toEqual({ status: 200, endpoint: 'a' });
    // The preference is no pin: the preferred endpoint failing, the next one answers.
    b.script({ type: 'status', status: 503 });
    expect(await ask('groq')).toEqual({ status: 200, endpoint: 'a' });
    // The preference field is the gateway's: it never goes upstream.
    expect([...a.requests, ...b.requests].every((r) => r.json?.['x-gateway'] === undefined)).toBe(true);
    expect(b.requests).toHaveLength(2);
  });
});
