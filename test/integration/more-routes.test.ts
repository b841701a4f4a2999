import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-more-routes-0123456789';

describe('POST /v1/embeddings and POST /v1/completions', () => {
  const bed = useTestBed();

  async function start(env: Record<string, string> = {}) {
    const down = await bed.upstream({ name: 'down', models: ['embed', 'base'] });
    const up = await bed.upstream({ name: 'up', models: ['embed', 'base'] });
    const gw = await bed.gateway({
      endpoints: [
        { url: down.url, name: 'down', priority: 1 },
        { url: up.url, name: 'up', priority: 2 },
      ],
      env: { ADMIN_API_KEY: ADMIN, ...env },
    });
    const sdk = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    return { down, up, gw, sdk };
  }

  it('embeddings: forwarded to /v1/embeddings, failed over on a 503, usage in the ledger and metrics', async () => {
    const { down, up, gw, sdk } = await start();
    down.defaultBehavior = { type: 'status', status: 503 };
    const answer = await sdk.embeddings.create({ model: 'embed', input: ['first text', 'second'] });
    expect(answer.data).toHaveLength(2);
    expect(answer.data[0]!.embedding).toHaveLength(8);
    expect(answer.usage.prompt_tokens).toBeGreaterThan(0);
    // Tried on the first endpoint, answered by the second: both at the embeddings path, body untouched.
    expect(down.requests.map((r) => r.path)).toEqual(['/v1/embeddings']);
    expect(up.requests.map((r) => r.path)).toEqual(['/v1/embeddings']);
    expect(up.requests[0]!.json).toEqual({
      model: 'embed',
      input: ['first text', 'second'],
      encoding_format: 'base64',
    });

    const records = (await (
      await fetch(`${gw.url}/api/v1/usage/records`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as { data: Array<Record<string, unknown>> };
    expect(records.data[0]).toMatchObject({
      model: 'embed',
      endpoint: 'up',
      status: 200,
      stream: false,
      attempts: 2,
      promptTokens: answer.usage.prompt_tokens,
      completionTokens: 0,
      estimated: false,
    });
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toContain('llm_gateway_requests_total{model="embed",status="200"} 1');
  });

  it('embeddings: bad input is a 400 naming the field; a stream is refused', async () => {
    const { gw } = await start();
    const post = async (body: unknown) => {
      const res = await fetch(`${gw.url}/v1/embeddings`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return {
        status: res.status,
        error: ((await res.json()) as { error: { message: string; param: string } }).error,
      };
    };
    expect(await post({ model: 'embed' })).toMatchObject({ status: 400, error: { param: 'input' } });
    expect(await post({ model: 'embed', input: [] })).toMatchObject({
      status: 400,
      error: { param: 'input', message: "'input' must not be an empty list" },
    });
    for (const input of [['text', 3], [1.5, 2], [[1, 2], []], { text: 'x' }, 7, null])
      expect(await post({ model: 'embed', input }), JSON.stringify(input)).toMatchObject({
        status: 400,
        error: { param: 'input' },
      });
    // Token ids, one list or several, are fine.
    expect((await post({ model: 'embed', input: [[1, 2], [3]] })).status).toBe(200);
    expect(await post({ input: 'x' })).toMatchObject({ status: 400, error: { param: 'model' } });
    const streamed = await post({ model: 'embed', input: 'x', stream: true });
    expect(streamed).toMatchObject({ status: 400, error: { param: 'stream' } });
    expect(streamed.error.message).toContain('never streamed');
    expect(
      (await fetch(`${gw.url}/v1/embeddings`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } })).status,
    ).toBe(405);
  });

  it('text completions: JSON and streamed, with the ledger counting the stream’s tokens', async () => {
    const { up, down, sdk, gw } = await start();
    down.defaultBehavior = { type: 'reset' };
    up.defaultBehavior = { type: 'answer', text: 'once upon a time' };
    const json = await sdk.completions.create({ model: 'base', prompt: 'Tell me a story' });
    expect(json.choices[0]!.text).toBe('once upon a time');
    const stream = await sdk.completions.create({ model: 'base', prompt: 'Again', stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe('once upon a time');
    expect(up.requests.map((r) => r.path)).toEqual(['/v1/completions', '/v1/completions']);
    // The gateway asked the stream for its usage (for the ledger) and kept the usage chunk to itself.
    expect(up.requests[1]!.json?.stream_options).toEqual({ include_usage: true });
    const records = (await (
      await fetch(`${gw.url}/api/v1/usage/records`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as { data: Array<Record<string, unknown>> };
    expect(records.data.map((r) => [r.stream, r.status, r.completionTokens])).toEqual([
      [true, 200, 7],
      [false, 200, 4],
    ]);
  });

  it('text completions: n, echo and max_tokens come back as a vLLM server answers them; an empty prompt list is a 400', async () => {
    const { up, down, sdk, gw } = await start();
    down.defaultBehavior = { type: 'reset' };
    up.defaultBehavior = { type: 'answer', text: 'once upon a time' };
    const json = await sdk.completions.create({
      model: 'base',
      prompt: 'Say: ',
      n: 2,
      echo: true,
      max_tokens: 2,
    });
    expect(json.choices.map((c) => [c.index, c.text, c.finish_reason])).toEqual([
      [0, 'Say: once upon ', 'length'],
      [1, 'Say: once upon ', 'length'],
    ]);
    expect(json.usage?.completion_tokens).toBe(4);
    const stream = await sdk.completions.create({ model: 'base', prompt: 'x', max_tokens: 3, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect([text, finish]).toEqual(['once upon a ', 'length']);
    const empty = await fetch(`${gw.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'base', prompt: [] }),
    });
    expect(empty.status).toBe(400);
    expect(await empty.json()).toMatchObject({
      error: { param: 'prompt', message: "'prompt' must not be an empty list" },
    });
  });

  it('limits count embeddings like chat: an rpm of 2 refuses the third request with a 429', async () => {
    const { gw } = await start();
    const team = await fetch(`${gw.url}/api/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'embedder', limits: { rpm: 2 } }),
    });
    const { key } = (await team.json()) as { key: string };
    const sdk = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
    await sdk.embeddings.create({ model: 'embed', input: 'a' });
    await sdk.completions.create({ model: 'base', prompt: 'b' });
    const third = await sdk.embeddings
      .create({ model: 'embed', input: 'c' })
      .catch((e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
    expect(third).toMatchObject({ status: 429 });
  });

  it('a text completion stream broken mid-answer is not continued as a chat: it ends with an error event', async () => {
    const { up, down, gw } = await start();
    down.defaultBehavior = { type: 'answer', text: 'one two three four five', dieAfterWords: 2 };
    up.defaultBehavior = { type: 'answer', text: 'one two three four five' };
    const res = await fetch(`${gw.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'base', prompt: 'count', stream: true }),
    });
    const text = await res.text();
    expect(text).toContain('"text":"one "');
    expect(text).toContain('"error"');
    expect(text).not.toContain('[DONE]');
    expect(text).not.toContain('chat.completion');
    expect(up.requests).toHaveLength(0);
  });

  it('a text completion stream that broke before any text restarts on another endpoint, at the same route', async () => {
    const { up, down, sdk } = await start();
    down.defaultBehavior = { type: 'raw-sse', chunks: [': warming up\n\n'], then: 'reset' };
    up.defaultBehavior = { type: 'answer', text: 'restarted whole' };
    const stream = await sdk.completions.create({ model: 'base', prompt: 'go', stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe('restarted whole');
    expect(up.requests.map((r) => r.path)).toEqual(['/v1/completions']);
  });

  it('embeddings reserve only their input against tpm (no output tokens); n multiplies a completion’s', async () => {
    const { gw } = await start();
    const created = await fetch(`${gw.url}/api/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'embedder', limits: { tpm: 1000 } }),
    });
    const { key } = (await created.json()) as { key: string };
    const res = await fetch(`${gw.url}/v1/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'embed', input: 'hello' }),
    });
    expect(res.status).toBe(200);
    // Reserved 2 tokens ("hello"), corrected to the answer's usage: far from the 1000.
    expect(Number(res.headers.get('x-ratelimit-remaining-tokens'))).toBeGreaterThan(990);
    // A completion asking for 3 answers of 300 tokens each would need 900 + its prompt, over what is left.
    const n = await fetch(`${gw.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'base', prompt: 'x'.repeat(400), max_tokens: 300, n: 3 }),
    });
    expect(n.status).toBe(429);
  });
});
