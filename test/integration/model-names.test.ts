import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load-config.js';
import { streamEvents, type FakeUpstream } from '../helpers/fake-upstream.js';
import { chat, sseData, streamedText } from '../helpers/http.js';
import { CLIENT_KEY, gatewayEnv } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

/** Issue 11, part 5: one public model name across differently named upstreams (`modelNames`). */
const bed = useTestBed();
const PUBLIC = 'llama-3.1-8b';
const VLLM_ID = 'meta-llama/Llama-3.1-8B-Instruct';
const OLLAMA_ID = 'llama3.1:8b';

/** A vLLM-like server (metadata in its list) and an Ollama-like one, each with its own id for the model. */
async function twoServers() {
  const vllm = await bed.upstream({ name: 'vllm', models: [VLLM_ID] });
  vllm.modelsBehavior = {
    type: 'json',
    body: {
      object: 'list',
      data: [
        {
          id: VLLM_ID,
          object: 'model',
          created: 1712345678,
          owned_by: 'vllm',
          root: VLLM_ID,
          parent: null,
          max_model_len: 8192,
        },
      ],
    },
  };
  const ollama = await bed.upstream({ name: 'ollama', models: [OLLAMA_ID, 'qwen2.5:7b'] });
  return { vllm, ollama };
}

function endpoints(vllm: FakeUpstream, ollama: FakeUpstream) {
  return [
    { url: vllm.url, name: 'vllm', modelNames: { [PUBLIC]: VLLM_ID } },
    { url: ollama.url, name: 'ollama', modelNames: { [PUBLIC]: OLLAMA_ID } },
  ];
}

describe('modelNames', () => {
  it('/v1/models lists the public id once, with the upstream metadata and created', async () => {
    const { vllm, ollama } = await twoServers();
    const gw = await bed.gateway({ endpoints: endpoints(vllm, ollama) });
    const res = await fetch(`${gw.url}/v1/models`, { headers: gw.auth });
    const { data } = (await res.json()) as { data: Array<Record<string, unknown>> };
    expect(data).toEqual([
      {
        id: PUBLIC,
        object: 'model',
        created: 1712345678,
        owned_by: 'proxy',
        root: VLLM_ID,
        parent: null,
        max_model_len: 8192,
      },
      { id: 'qwen2.5:7b', object: 'model', created: 1700000000, owned_by: 'proxy' },
    ]);
    const one = await fetch(`${gw.url}/v1/models/${PUBLIC}`, { headers: gw.auth });
    expect(await one.json()).toMatchObject({ id: PUBLIC, max_model_len: 8192 });
  });

  it('balances the public id over both, asks each by its own id, and answers with the public id', async () => {
    const { vllm, ollama } = await twoServers();
    let turn = 0;
    const gw = await bed.gateway({
      endpoints: endpoints(vllm, ollama),
      // Two requests (JSON, then a stream) to one endpoint of the tier, the next two to the other.
      random: () => (Math.floor(turn++ / 2) % 2 === 0 ? 0.1 : 0.9),
    });
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    const served = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const json = await client.chat.completions.create({
        model: PUBLIC,
        messages: [{ role: 'user', content: 'hi' }],
      });
      expect(json.model).toBe(PUBLIC);
      const streamRes = await chat(gw.url, gw.auth, {
        body: { model: PUBLIC, stream: true, messages: [{ role: 'user', content: 'hi' }] },
      });
      served.add(String(streamRes.headers['x-gateway-endpoint']));
      const chunks = sseData(streamRes.text)
        .filter((d) => d !== '[DONE]')
        .map((d) => JSON.parse(d) as { model: string });
      expect(chunks.length).toBeGreaterThan(2);
      for (const c of chunks) expect(c.model).toBe(PUBLIC);
      expect(streamRes.text).not.toMatch(/Llama-3\.1-8B-Instruct|llama3\.1:8b/);
    }
    expect(served).toEqual(new Set(['vllm', 'ollama']));
    expect(vllm.requests.length).toBeGreaterThan(0);
    expect(ollama.requests.length).toBeGreaterThan(0);
    for (const r of vllm.requests) expect(r.json?.model).toBe(VLLM_ID);
    for (const r of ollama.requests) expect(r.json?.model).toBe(OLLAMA_ID);
  });

  it('forwards the body byte for byte to an endpoint that knows the model by the public id', async () => {
    const plain = await bed.upstream({ name: 'plain', models: [PUBLIC] });
    const gw = await bed.gateway({
      endpoints: [{ url: plain.url, name: 'plain', modelNames: { other: 'something-else' } }],
    });
    const body = `{"model":"${PUBLIC}",  "messages":[{"role":"user","content":"hi"}]}`;
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...gw.auth, 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(200);
    expect(plain.requests[0]!.body.toString()).toBe(body);
  });

  it('a broken stream continued on the other server: each is asked by its own id, the client sees one', async () => {
    const { vllm, ollama } = await twoServers();
    const text = 'one two three four five six seven eight';
    vllm.script({ type: 'sse', events: streamEvents(VLLM_ID, text).slice(0, 4), then: 'reset' });
    const gw = await bed.gateway({ endpoints: endpoints(vllm, ollama), random: () => 0 });
    const res = await chat(gw.url, gw.auth, {
      body: { model: PUBLIC, stream: true, messages: [{ role: 'user', content: 'count' }] },
    });
    expect(res.status).toBe(200);
    expect(sseData(res.text).at(-1)).toBe('[DONE]');
    const chunks = sseData(res.text)
      .filter((d) => d !== '[DONE]')
      .map((d) => JSON.parse(d) as { model: string });
    for (const c of chunks) expect(c.model).toBe(PUBLIC);
    expect(streamedText(res.text).startsWith('one two three ')).toBe(true);
    const continuation = ollama.requests[0]!.json!;
    expect(continuation.model).toBe(OLLAMA_ID);
    expect(continuation.continue_final_message).toBe(true);
  });

  it('refuses two public ids for one upstream id', () => {
    const env = gatewayEnv([{ url: 'http://127.0.0.1:9', name: 'a', modelNames: { a: 'x', b: 'x' } }]);
    expect(() => loadConfig({ env })).toThrow(ConfigError);
    try {
      loadConfig({ env });
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([
        "ENDPOINTS: endpoints[0] (a).modelNames.b: 'a' and 'b' both name the upstream model 'x': give each upstream model one public id",
      ]);
    }
  });
});
