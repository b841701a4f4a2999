import { writeFile } from 'node:fs/promises';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { streamEvents } from '../helpers/fake-upstream.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-tests-0123456789';
const TEXT = 'One two three four five.';

describe('usage ledger: one record per finished request, tokens for every stream', () => {
  const bed = useTestBed();

  async function start(yaml = '') {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const env: Record<string, string> = { ADMIN_API_KEY: ADMIN };
    if (yaml) {
      const dir = await bed.tempDir('gw-ledger-');
      await writeFile(`${dir}/gateway.yaml`, yaml);
      env.CONFIG_FILE = `${dir}/gateway.yaml`;
    }
    const gw = await bed.gateway({ endpoints: [{ url: upstream.url, name: 'gpu' }], env });
    const records = async () => {
      await gw.gateway.ledger.flush();
      return (await gw.gateway.records.recentUsage(100)).reverse();
    };
    const sdk = new OpenAI({ apiKey: CLIENT_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    return { upstream, gw, records, sdk };
  }

  it('a stream that did not ask for usage: usage asked upstream, the client gets the upstream stream byte for byte', async () => {
    const { upstream, gw, records } = await start();
    upstream.script({ type: 'answer', text: TEXT });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama', stream: true, messages: [{ role: 'user', content: 'count' }] }),
    });
    const received = await res.text();
    // What the upstream sends a client that did not ask for usage.
    const expected =
      streamEvents('llama', TEXT)
        .map((e) => `data: ${e}\n\n`)
        .join('') + 'data: [DONE]\n\n';
    expect(received).toBe(expected);
    expect((upstream.requests[0]!.json!.stream_options as { include_usage: boolean }).include_usage).toBe(
      true,
    );
    const [record] = await records();
    expect(record).toMatchObject({
      model: 'llama',
      servedModel: 'llama',
      endpoint: 'gpu',
      stream: true,
      status: 200,
      errorCode: null,
      promptTokens: 50,
      completionTokens: 7,
      estimated: false,
      cached: false,
      attempts: 1,
      keyId: expect.stringMatching(/^static-[0-9a-f]{8}$/),
    });
    expect(record!.id).toBe(res.headers.get('x-request-id'));
  });

  it('a stream that asked for usage gets its usage chunk, unchanged; the openai SDK reads it', async () => {
    const { records, sdk } = await start();
    const stream = await sdk.chat.completions.create({
      model: 'llama',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'x' }],
    });
    let usage: unknown;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage).toEqual({ prompt_tokens: 50, completion_tokens: 7, total_tokens: 57 });
    expect((await records())[0]).toMatchObject({ promptTokens: 50, completionTokens: 7, estimated: false });
  });

  it('an upstream that sends no usage: tokens estimated and marked so', async () => {
    const { upstream, gw, records } = await start();
    upstream.script({ type: 'sse', text: TEXT });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'llama',
        stream: true,
        messages: [{ role: 'user', content: 'x'.repeat(400) }],
      }),
    });
    await res.text();
    const [record] = await records();
    expect(record).toMatchObject({ estimated: true, promptTokens: 104 });
    expect(record!.completionTokens).toBeGreaterThan(0);
  });

  it('JSON answers, refusals, upstream failures and client aborts are each one record, with cost', async () => {
    const { upstream, gw, records, sdk } = await start(
      'pricing:\n  llama: { inputPerMTok: 1000000, outputPerMTok: 2000000 }\nlimits:\n  models:\n    limited: { rpm: 1 }\n',
    );
    await sdk.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'x' }] });
    upstream.script({ type: 'status', status: 500, body: { error: { message: 'boom' } } });
    upstream.script({ type: 'status', status: 500, body: { error: { message: 'boom' } } });
    upstream.script({ type: 'status', status: 500, body: { error: { message: 'boom' } } });
    await expect(
      sdk.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toMatchObject({ status: 502 });
    upstream.models = ['llama', 'limited'];
    await gw.gateway.discovery.refresh();
    await sdk.chat.completions.create({ model: 'limited', messages: [{ role: 'user', content: 'x' }] });
    await expect(
      sdk.chat.completions.create({ model: 'limited', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toMatchObject({ status: 429 });
    upstream.script({ type: 'sse', then: 'hang' });
    const abort = new AbortController();
    const hanging = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama', stream: true, messages: [{ role: 'user', content: 'x' }] }),
      signal: abort.signal,
    });
    expect(hanging.status).toBe(200);
    abort.abort();
    await upstream.requests.at(-1)!.closed;
    await gw.gateway.ledger.flush();
    const all = await records();
    expect(all.map((r) => [r.model, r.status, r.errorCode])).toEqual([
      ['llama', 200, null],
      ['llama', 502, 'upstream_error'],
      ['limited', 200, null],
      ['limited', 429, 'rate_limit_exceeded'],
      ['llama', 200, 'client_closed'],
    ]);
    // 5 prompt tokens at 1 per token, a few completion tokens at 2 each.
    expect(all[0]!.cost).toBeCloseTo(5 + 2 * all[0]!.completionTokens);
    expect(all[1]).toMatchObject({ attempts: 3, promptTokens: 0, completionTokens: 0, cost: 0 });
    expect(all[3]).toMatchObject({ endpoint: null, attempts: 0, promptTokens: 0, cost: 0 });
  });

  it('a virtual key’s records carry its id, team and user; the body’s user when the key has none', async () => {
    const { gw, records } = await start();
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    await fetch(`${gw.url}/api/v1/teams`, { method: 'POST', headers: admin, body: '{"id":"lab"}' });
    const key = (await (
      await fetch(`${gw.url}/api/v1/keys`, {
        method: 'POST',
        headers: admin,
        body: '{"name":"k","team":"lab","user":"alice"}',
      })
    ).json()) as { key: string; id: string };
    await new OpenAI({ apiKey: key.key, baseURL: `${gw.url}/v1`, maxRetries: 0 }).chat.completions.create({
      model: 'llama',
      messages: [{ role: 'user', content: 'x' }],
    });
    await new OpenAI({ apiKey: CLIENT_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 }).chat.completions.create({
      model: 'llama',
      user: 'bob',
      messages: [{ role: 'user', content: 'x' }],
    });
    const [mine, theirs] = await records();
    expect(mine).toMatchObject({ keyId: key.id, team: 'lab', user: 'alice' });
    expect(theirs).toMatchObject({ team: null, user: 'bob' });
  });
});

describe('usage API', () => {
  const bed = useTestBed();

  it('admin totals grouped and filtered, records page by page; a key sees only its own usage', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama', 'qwen'] });
    const dir = await bed.tempDir('gw-usage-');
    await writeFile(
      `${dir}/gateway.yaml`,
      'pricing:\n  llama: { inputPerMTok: 1000000, outputPerMTok: 1000000 }\n',
    );
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { ADMIN_API_KEY: ADMIN, CONFIG_FILE: `${dir}/gateway.yaml` },
    });
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    const key = (await (
      await fetch(`${gw.url}/api/v1/keys`, {
        method: 'POST',
        headers: admin,
        body: '{"name":"k","user":"alice"}',
      })
    ).json()) as { key: string; id: string };
    const mine = new OpenAI({ apiKey: key.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const theirs = new OpenAI({ apiKey: CLIENT_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const ask = (sdk: OpenAI, model: string) =>
      sdk.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] });
    await ask(mine, 'llama');
    await ask(mine, 'qwen');
    await ask(theirs, 'llama');
    const get = async (path: string, headers: Record<string, string> = admin) => {
      const res = await fetch(`${gw.url}${path}`, { headers });
      return { status: res.status, json: (await res.json()) as any };
    };

    const total = (await get('/api/v1/usage')).json;
    expect(total).toMatchObject({ object: 'usage', total_requests: 3, cache_hits: 0, cache_misses: 3 });
    expect(total.total_tokens).toBeGreaterThan(0);
    expect(total.total_cost).toBeGreaterThan(0);
    const byKey = (await get('/api/v1/usage?group_by=key')).json;
    expect(byKey.data.find((g: { key: string }) => g.key === key.id).requests).toBe(2);
    const byModel = (await get(`/api/v1/usage?group_by=model&key=${key.id}`)).json;
    expect(
      byModel.data.map((g: { model: string; requests: number }) => [g.model, g.requests]).sort(),
    ).toEqual([
      ['llama', 1],
      ['qwen', 1],
    ]);
    const page1 = (await get('/api/v1/usage/records?limit=2')).json;
    expect(page1.data).toHaveLength(2);
    expect(page1.data[0].model).toBe('llama');
    expect(page1.data[0].time).toMatch(/^\d{4}-\d\d-\d\dT/);
    const page2 = (await get(`/api/v1/usage/records?limit=2&cursor=${page1.next_cursor}`)).json;
    expect(page2.data).toHaveLength(1);
    expect(page2.next_cursor).toBeNull();

    const own = (await get('/v1/usage?group_by=model', { authorization: `Bearer ${key.key}` })).json;
    expect(own.total_requests).toBe(2);
    const sdkUsage = (await get('/v1/usage', { authorization: `Bearer ${CLIENT_KEY}` })).json;
    expect(sdkUsage.total_requests).toBe(1);

    for (const [path, param] of [
      ['/api/v1/usage?group_by=week', 'group_by'],
      ['/api/v1/usage?from=yesterday', 'from'],
      ['/api/v1/usage?nope=1', 'nope'],
      ['/api/v1/usage/records?limit=0', 'limit'],
      ['/api/v1/usage/records?cursor=abc', 'cursor'],
      ['/api/v1/usage?team=a&team=b', 'team'],
    ] as const) {
      const res = await get(path);
      expect({ path, status: res.status, param: res.json.error.param }).toEqual({ path, status: 400, param });
    }
    expect((await get('/api/v1/usage', { authorization: `Bearer ${key.key}` })).status).toBe(401);
  });
});

describe('pricing follows a reload', () => {
  const bed = useTestBed();

  it('the cost of the next request uses the reloaded price table', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const dir = await bed.tempDir('gw-pricing-');
    const file = `${dir}/gateway.yaml`;
    await writeFile(file, 'pricing:\n  llama: { inputPerMTok: 1000000, outputPerMTok: 0 }\n');
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { CONFIG_FILE: file },
      reloadEnv: () => ({}),
    });
    const sdk = new OpenAI({ apiKey: CLIENT_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const ask = () =>
      sdk.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'x' }] });
    await ask();
    await writeFile(file, 'pricing:\n  llama: { inputPerMTok: 3000000, outputPerMTok: 0 }\n');
    const summary = gw.gateway.reloadFromSource();
    expect(summary.settings).toContain('pricing.llama.inputPerMTok');
    await ask();
    await gw.gateway.ledger.flush();
    const [first, second] = (await gw.gateway.records.recentUsage(10)).reverse();
    // 5 prompt tokens at 1, then at 3 per token.
    expect(first!.cost).toBeCloseTo(5);
    expect(second!.cost).toBeCloseTo(15);
  });
});
