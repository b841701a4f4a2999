import { writeFile } from 'node:fs/promises';
import type http from 'node:http';
import Anthropic from '@anthropic-ai/sdk';
import { ApiError, GoogleGenAI } from '@google/genai';
import OpenAI, { AzureOpenAI } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { ANTHROPIC_KEY, FakeAnthropic } from '../helpers/fake-anthropic.js';
import { FakeGemini, GEMINI_KEY } from '../helpers/fake-gemini.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-provider-tests-0123456789';

describe('the fake Anthropic server speaks the wire protocol @anthropic-ai/sdk expects', () => {
  const fakes: FakeAnthropic[] = [];
  afterEach(async () => {
    await Promise.all(fakes.splice(0).map((f) => f.close()));
  });

  it('JSON, streams with tools, and errors, read by the official SDK', async () => {
    const fake = await new FakeAnthropic().start();
    fakes.push(fake);
    const sdk = new Anthropic({ apiKey: ANTHROPIC_KEY, baseURL: fake.url, maxRetries: 0 });
    const json = await sdk.messages.create({
      model: 'claude-test',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(json.content).toEqual([{ type: 'text', text: 'Hello from Claude.' }]);
    fake.script.push({ type: 'tool', name: 'weather', input: { city: 'Paris' }, text: 'Checking.' });
    const stream = sdk.messages.stream({
      model: 'claude-test',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'weather?' }],
      tools: [
        { name: 'weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
      ],
    });
    const final = await stream.finalMessage();
    expect(final.stop_reason).toBe('tool_use');
    expect(final.content[1]).toMatchObject({ type: 'tool_use', name: 'weather', input: { city: 'Paris' } });
    fake.script.push({ type: 'status', status: 529, errorType: 'overloaded_error', message: 'Overloaded' });
    const err = await sdk.messages
      .create({ model: 'claude-test', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect((err as InstanceType<typeof Anthropic.APIError>).status).toBe(529);
  });
});

describe('the fake Gemini server speaks the wire protocol @google/genai expects', () => {
  const fakes: FakeGemini[] = [];
  afterEach(async () => {
    await Promise.all(fakes.splice(0).map((f) => f.close()));
  });

  it('generateContent, its SSE stream, function calls, embeddings and errors, read by the official SDK', async () => {
    const fake = await new FakeGemini().start();
    fakes.push(fake);
    const ai = new GoogleGenAI({ apiKey: GEMINI_KEY, httpOptions: { baseUrl: fake.url } });
    const json = await ai.models.generateContent({
      model: 'gemini-test',
      contents: 'hi',
      config: { systemInstruction: 'Be brief.', maxOutputTokens: 20 },
    });
    expect(json.text).toBe('Hello from Gemini.');
    expect(json.usageMetadata?.totalTokenCount).toBe(13);
    expect(fake.requests[0]!.url).toBe('/v1beta/models/gemini-test:generateContent');

    fake.script.push({ type: 'text', text: 'one two three' });
    let streamed = '';
    for await (const chunk of await ai.models.generateContentStream({
      model: 'gemini-test',
      contents: 'count',
    }))
      streamed += chunk.text ?? '';
    expect(streamed).toBe('one two three');
    expect(fake.requests[1]!.url).toBe('/v1beta/models/gemini-test:streamGenerateContent?alt=sse');

    fake.script.push({ type: 'tool', name: 'weather', args: { city: 'Paris' } });
    const call = await ai.models.generateContent({
      model: 'gemini-test',
      contents: 'weather?',
      config: {
        tools: [{ functionDeclarations: [{ name: 'weather', parametersJsonSchema: { type: 'object' } }] }],
      },
    });
    expect(call.functionCalls).toEqual([{ name: 'weather', args: { city: 'Paris' } }]);

    const embedded = await ai.models.embedContent({ model: 'embedding-test', contents: ['a', 'b'] });
    expect(embedded.embeddings?.map((e) => e.values)).toEqual([
      [0, 0.25, 0.5, 0.75],
      [1, 1.25, 1.5, 1.75],
    ]);

    fake.script.push({ type: 'status', status: 503, errorStatus: 'UNAVAILABLE', message: 'overloaded' });
    const err = await ai.models
      .generateContent({ model: 'gemini-test', contents: 'x' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(503);
    // A strict fake: what the real API refuses, it refuses.
    const refused = await ai.models
      .generateContent({ model: 'nope', contents: 'x' })
      .catch((e: unknown) => e);
    expect((refused as ApiError).status).toBe(404);
  });
});

describe('provider anthropic: OpenAI clients on Anthropic endpoints', () => {
  const bed = useTestBed();
  const fakes: FakeAnthropic[] = [];
  afterEach(async () => {
    await Promise.all(fakes.splice(0).map((f) => f.close()));
  });

  async function start(options: { fallback?: boolean; models?: string[] } = {}) {
    const fake = await new FakeAnthropic().start();
    fakes.push(fake);
    const backup = options.fallback
      ? await bed.upstream({ name: 'vllm', models: ['claude-test'] })
      : undefined;
    const gw = await bed.gateway({
      endpoints: [
        {
          url: fake.url,
          name: 'claude',
          provider: 'anthropic',
          apiKey: ANTHROPIC_KEY,
          priority: 1,
          ...(options.models ? { models: options.models } : {}),
        },
        ...(backup ? [{ url: backup.url, name: 'vllm', priority: 2 }] : []),
      ],
    });
    const sdk = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    return { fake, backup, gw, sdk };
  }

  it('discovers its models from Anthropic’s list; a JSON answer in OpenAI’s shape with usage and finish_reason', async () => {
    const { fake, sdk, gw } = await start();
    const models = await sdk.models.list();
    expect(models.data.map((m) => m.id)).toContain('claude-test');
    const answer = await sdk.chat.completions.create({
      model: 'claude-test',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello' },
      ],
      temperature: 1.5,
      stop: 'END',
    });
    expect(answer.object).toBe('chat.completion');
    expect(answer.choices[0]!.message).toMatchObject({ role: 'assistant', content: 'Hello from Claude.' });
    expect(answer.choices[0]!.finish_reason).toBe('stop');
    // Cached input counts as prompt tokens (12 + 3 read from the cache).
    expect(answer.usage).toMatchObject({ prompt_tokens: 15, completion_tokens: 7, total_tokens: 22 });
    const sent = fake.requests.at(-1)!;
    expect(sent.headers['x-api-key']).toBe(ANTHROPIC_KEY);
    expect(sent.headers['anthropic-version']).toBe('2023-06-01');
    expect(sent.headers.authorization).toBeUndefined();
    expect(sent.json).toEqual({
      model: 'claude-test',
      max_tokens: 4096,
      system: 'Be brief.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }],
      temperature: 1,
      stop_sequences: ['END'],
    });
    // The upstream key never reaches the client or the logs.
    expect(JSON.stringify(answer)).not.toContain(ANTHROPIC_KEY);
    expect(gw.rawLogs()).not.toContain(ANTHROPIC_KEY);
  });

  it('streams tool calls as OpenAI deltas, and a follow-up tool message becomes a tool_result', async () => {
    const { fake, sdk } = await start();
    fake.script.push({
      type: 'tool',
      name: 'weather',
      input: { city: 'Paris', days: 2 },
      text: 'Let me check.',
    });
    const tools = [
      {
        type: 'function' as const,
        function: {
          name: 'weather',
          description: 'Weather by city',
          parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'number' } } },
        },
      },
    ];
    const stream = await sdk.chat.completions.create({
      model: 'claude-test',
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      tools,
      tool_choice: 'required',
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let args = '';
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let call: { id?: string; name?: string } = {};
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (chunk.usage) usage = chunk.usage;
      if (!choice) continue;
      text += choice.delta.content ?? '';
      for (const t of choice.delta.tool_calls ?? []) {
        expect(t.index).toBe(0);
        if (t.id) call = { id: t.id, name: t.function?.name };
        args += t.function?.arguments ?? '';
      }
      finish = choice.finish_reason ?? finish;
    }
    expect(text).toBe('Let me check.');
    expect(call).toEqual({ id: 'toolu_01', name: 'weather' });
    expect(JSON.parse(args)).toEqual({ city: 'Paris', days: 2 });
    expect(finish).toBe('tool_calls');
    expect(usage).toMatchObject({ prompt_tokens: 15, completion_tokens: 7 });
    expect(fake.requests.at(-1)!.json).toMatchObject({
      stream: true,
      tool_choice: { type: 'any' },
      tools: [
        { name: 'weather', description: 'Weather by city', input_schema: tools[0]!.function.parameters },
      ],
    });

    await sdk.chat.completions.create({
      model: 'claude-test',
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        {
          role: 'assistant',
          content: 'Let me check.',
          tool_calls: [{ id: 'toolu_01', type: 'function', function: { name: 'weather', arguments: args } }],
        },
        { role: 'tool', tool_call_id: 'toolu_01', content: '{"temp": 21}' },
      ],
      tools,
    });
    expect(fake.requests.at(-1)!.json.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me check.' },
          { type: 'tool_use', id: 'toolu_01', name: 'weather', input: { city: 'Paris', days: 2 } },
        ],
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01', content: '{"temp": 21}' }] },
    ]);
  });

  it('529 overloaded fails over to the next endpoint; a 400 comes back as a 400 with its message', async () => {
    const { fake, backup, sdk, gw } = await start({ fallback: true, models: ['claude-test'] });
    fake.script.push({ type: 'status', status: 529, errorType: 'overloaded_error', message: 'Overloaded' });
    const answer = await sdk.chat.completions.create({
      model: 'claude-test',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(answer.choices[0]!.message.content).toBeTruthy();
    expect(backup!.requests).toHaveLength(1);

    fake.script.push({
      type: 'status',
      status: 400,
      errorType: 'invalid_request_error',
      message: 'prompt is too long',
    });
    const err = await sdk.chat.completions
      .create({ model: 'claude-test', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toContain('prompt is too long');

    // Metrics per provider: each attempt under its endpoint's provider.
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    const attempts = (provider: string, endpoint: string, outcome: string) =>
      Number(
        new RegExp(
          `^llm_gateway_provider_requests_total\\{provider="${provider}",endpoint="${endpoint}",outcome="${outcome}"\\} (\\d+)$`,
          'm',
        ).exec(metrics)?.[1] ?? 0,
      );
    expect(attempts('anthropic', 'claude', 'status_5xx')).toBe(1);
    expect(attempts('openai-compatible', 'vllm', 'success')).toBe(1);
    expect(attempts('anthropic', 'claude', 'status_4xx')).toBe(1);
  });

  it('across providers: an alias chains Anthropic to vLLM, and a translated answer’s usage and cost reach the ledger', async () => {
    const fake = await new FakeAnthropic().start();
    fakes.push(fake);
    const vllm = await bed.upstream({ name: 'vllm', models: ['llama'] });
    const dir = await bed.tempDir('gw-providers-');
    await writeFile(
      `${dir}/gateway.yaml`,
      'aliases:\n  smart: [claude-test, llama]\npricing:\n  claude-test: { inputPerMTok: 3, outputPerMTok: 15 }\n',
    );
    const gw = await bed.gateway({
      endpoints: [
        {
          url: fake.url,
          name: 'claude',
          provider: 'anthropic',
          apiKey: ANTHROPIC_KEY,
          models: ['claude-test'],
        },
        { url: vllm.url, name: 'vllm' },
      ],
      env: { ADMIN_API_KEY: ADMIN, CONFIG_FILE: `${dir}/gateway.yaml` },
    });
    const sdk = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    const ask = () =>
      sdk.chat.completions
        .create({ model: 'smart', messages: [{ role: 'user', content: 'hi' }] })
        .withResponse();
    const first = await ask();
    expect(first.response.headers.get('x-gateway-endpoint')).toBe('claude');
    expect(first.data.choices[0]!.message.content).toBe('Hello from Claude.');
    // Overloaded (every try): the alias goes on to its next model, on the vLLM endpoint.
    fake.defaultBehavior = {
      type: 'status',
      status: 529,
      errorType: 'overloaded_error',
      message: 'Overloaded',
    };
    const second = await ask();
    expect(second.response.headers.get('x-gateway-endpoint')).toBe('vllm');
    expect(vllm.requests[0]!.json).toMatchObject({ model: 'llama' });

    const records = (await (
      await fetch(`${gw.url}/api/v1/usage/records`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as { data: Array<Record<string, unknown>> };
    const claude = records.data.find((r) => r.endpoint === 'claude')!;
    // Anthropic's usage (12 input + 3 cache read, 7 output), priced by the served model's entry.
    expect(claude).toMatchObject({
      model: 'smart',
      servedModel: 'claude-test',
      promptTokens: 15,
      completionTokens: 7,
    });
    expect(claude.cost).toBeCloseTo((15 * 3 + 7 * 15) / 1e6, 12);
    expect(records.data.find((r) => r.endpoint === 'vllm')).toMatchObject({
      servedModel: 'llama',
      status: 200,
    });
  });

  it('hedging races a slow vLLM endpoint against an Anthropic one serving the same model', async () => {
    const fake = await new FakeAnthropic().start();
    fakes.push(fake);
    const vllm = await bed.upstream({ name: 'vllm', models: ['llama'] });
    vllm.defaultBehavior = { type: 'sse', text: 'slow answer', firstDelayMs: 1500 };
    const gw = await bed.gateway({
      endpoints: [
        { url: vllm.url, name: 'vllm', priority: 1 },
        {
          url: fake.url,
          name: 'claude',
          provider: 'anthropic',
          apiKey: ANTHROPIC_KEY,
          priority: 2,
          models: ['llama'],
          modelNames: { llama: 'claude-test' },
        },
      ],
      env: { HEDGE_DELAY_MS: '100', HEDGE_MODELS: 'llama' },
    });
    const sdk = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    const { data: stream, response } = await sdk.chat.completions
      .create({ model: 'llama', messages: [{ role: 'user', content: 'hi' }], stream: true })
      .withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('Hello from Claude.');
    expect(response.headers.get('x-gateway-endpoint')).toBe('claude');
    expect(fake.requests[0]!.json.model).toBe('claude-test');
    // The loser is stopped.
    await vllm.requests[0]!.closed;
  });

  it('a stream cut mid-answer is continued on Anthropic with the text so far as a prefill', async () => {
    const { fake, sdk } = await start({ models: ['claude-test'] });
    fake.script.push({ type: 'cut', text: 'One two three four.' });
    fake.script.push({ type: 'text', text: 'two three four.' });
    const stream = await sdk.chat.completions.create({
      model: 'claude-test',
      messages: [{ role: 'user', content: 'Count.' }],
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('One two three four.');
    const retry = fake.requests.at(-1)!.json;
    // The answer so far is the assistant's prefill, without its trailing space (Anthropic refuses it).
    expect(retry.messages.at(-1)).toEqual({ role: 'assistant', content: [{ type: 'text', text: 'One' }] });
  });
});

describe('provider azure and gemini; presets', () => {
  const bed = useTestBed();
  const servers: http.Server[] = [];
  const geminis: FakeGemini[] = [];
  afterEach(async () => {
    await Promise.all(geminis.splice(0).map((f) => f.close()));
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });

  it('azure: the deployment path with api-version, the key as api-key, the body as the client sent it', async () => {
    const azure = await bed.upstream({ name: 'azure', models: ['gpt-4o'] });
    const gw = await bed.gateway({
      endpoints: [
        {
          url: azure.url,
          name: 'az',
          provider: 'azure',
          apiKey: 'azure-secret-0123456789',
          deployments: { 'gpt-4o': 'gpt4o-prod' },
        },
      ],
    });
    const sdk = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    expect((await sdk.models.list()).data.map((m) => m.id)).toEqual(['gpt-4o']);
    const answer = await sdk.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(answer.choices[0]!.message.content).toBeTruthy();
    const sent = azure.requests.at(-1)!;
    expect(sent.path).toBe('/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21');
    expect(sent.headers['api-key']).toBe('azure-secret-0123456789');
    expect(sent.headers.authorization).toBeUndefined();
    expect(sent.json).toEqual({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    // The official Azure client, called directly, sends the same path, version and key header.
    const official = new AzureOpenAI({
      endpoint: azure.url,
      apiKey: 'azure-secret-0123456789',
      apiVersion: '2024-10-21',
      deployment: 'gpt4o-prod',
      maxRetries: 0,
    });
    await official.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    const direct = azure.requests.at(-1)!;
    expect(direct.path).toBe(sent.path);
    expect(direct.headers['api-key']).toBe(sent.headers['api-key']);
  });

  it('an azure endpoint without deployments, or an unknown provider, stops start-up naming the field', async () => {
    const { loadConfig } = await import('../../src/config/load-config.js');
    const load = (endpoints: unknown) => () =>
      loadConfig({ env: { API_KEY: CLIENT_KEY, HOST: '127.0.0.1', ENDPOINTS: JSON.stringify(endpoints) } });
    expect(load([{ url: 'http://127.0.0.1:1', provider: 'azure' }])).toThrow(/deployments/);
    expect(load([{ url: 'http://127.0.0.1:1', provider: 'claude' }])).toThrow(/provider must be one of/);
    // A preset brings its base URL.
    const config = loadConfig({
      env: {
        API_KEY: CLIENT_KEY,
        HOST: '127.0.0.1',
        ENDPOINTS: JSON.stringify([
          { provider: 'groq', apiKey: 'gsk_x', models: ['llama-3.3-70b-versatile'] },
        ]),
      },
    });
    expect(config.endpoints[0]).toMatchObject({
      provider: 'groq',
      url: 'https://api.groq.com/openai',
      name: 'api.groq.com',
    });
  });

  it('a failed model list names the provider’s own path (Gemini: /v1beta/models), never /v1/models', async () => {
    const fake = await new FakeGemini().start();
    geminis.push(fake);
    const gw = await bed.gateway({
      endpoints: [{ url: fake.url, name: 'gem', provider: 'gemini', apiKey: 'wrong-key-0123456789' }],
    });
    await gw.gateway.discovery.refresh();
    expect(gw.gateway.registry.endpoints[0]!.lastDiscoveryError).toBe('GET /v1beta/models answered HTTP 400');
  });

  it('gemini: native generateContent and its SSE stream, tool calls, usage and finish reasons in OpenAI’s shapes', async () => {
    const fake = await new FakeGemini().start();
    geminis.push(fake);
    const gw = await bed.gateway({
      endpoints: [{ url: fake.url, name: 'gem', provider: 'gemini', apiKey: GEMINI_KEY }],
    });
    const sdk = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    // Discovered from Gemini's list: models that generate content or embed (not the others).
    expect((await sdk.models.list()).data.map((m) => m.id)).toEqual(['gemini-test', 'embedding-test']);
    fake.script.push({ type: 'text', text: 'Hello from Gemini.', finishReason: 'MAX_TOKENS' });
    const answer = await sdk.chat.completions.create({
      model: 'gemini-test',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      max_tokens: 20,
    });
    expect(answer.choices[0]).toMatchObject({
      message: { role: 'assistant', content: 'Hello from Gemini.' },
      finish_reason: 'length',
    });
    expect(answer.usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 });
    // The model as asked, not Gemini's version name (gemini-test-001).
    expect(answer.model).toBe('gemini-test');
    expect(fake.requests[0]!.headers['x-goog-api-key']).toBe(GEMINI_KEY);
    expect(fake.requests[0]!.headers.authorization).toBeUndefined();
    expect(fake.requests[0]).toMatchObject({
      url: '/v1beta/models/gemini-test:generateContent',
      json: {
        contents: [{ role: 'user', parts: [{ text: 'Hi' }] }],
        systemInstruction: { parts: [{ text: 'Be brief.' }] },
        generationConfig: { maxOutputTokens: 20 },
      },
    });

    fake.script.push({ type: 'tool', name: 'log', args: { ok: true }, text: 'Sunny.' });
    const stream = await sdk.chat.completions.create({
      model: 'gemini-test',
      messages: [{ role: 'user', content: 'Weather?' }],
      tools: [{ type: 'function', function: { name: 'log', parameters: { type: 'object' } } }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let args = '';
    let callId = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      text += choice.delta.content ?? '';
      for (const t of choice.delta.tool_calls ?? []) {
        args += t.function?.arguments ?? '';
        callId ||= t.id ?? '';
      }
      finish = choice.finish_reason ?? finish;
    }
    expect(text).toBe('Sunny.');
    expect(JSON.parse(args)).toEqual({ ok: true });
    expect(finish).toBe('tool_calls');
    expect(usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 4 });
    expect(fake.requests[1]!.url).toBe('/v1beta/models/gemini-test:streamGenerateContent?alt=sse');
    expect(fake.requests[1]!.json.tools).toEqual([
      { functionDeclarations: [{ name: 'log', parameters: { type: 'object' } }] },
    ]);

    // The tool's result goes back as a functionResponse under the function's name.
    await sdk.chat.completions.create({
      model: 'gemini-test',
      messages: [
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          content: 'Sunny.',
          tool_calls: [{ id: callId, type: 'function', function: { name: 'log', arguments: args } }],
        },
        { role: 'tool', tool_call_id: callId, content: '{"logged": true}' },
      ],
      tools: [{ type: 'function', function: { name: 'log', parameters: { type: 'object' } } }],
    });
    expect(fake.requests[2]!.json.contents).toEqual([
      { role: 'user', parts: [{ text: 'Weather?' }] },
      { role: 'model', parts: [{ text: 'Sunny.' }, { functionCall: { name: 'log', args: { ok: true } } }] },
      { role: 'user', parts: [{ functionResponse: { name: 'log', response: { logged: true } } }] },
    ]);

    // A Gemini error comes back with its status and message.
    fake.script.push({ type: 'status', status: 400, errorStatus: 'INVALID_ARGUMENT', message: 'bad schema' });
    const bad = await sdk.chat.completions
      .create({ model: 'gemini-test', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as Error).message).toContain('bad schema');

    // Embeddings through batchEmbedContents: floats, or base64 (the SDK's default, decoded by it).
    const embedded = await sdk.embeddings.create({ model: 'embedding-test', input: ['a', 'bcde'] });
    expect(embedded.data.map((d) => d.embedding)).toEqual([
      [0, 0.25, 0.5, 0.75],
      [1, 1.25, 1.5, 1.75],
    ]);
    expect(embedded.usage).toEqual({ prompt_tokens: 2, total_tokens: 2 });
    expect(fake.requests.at(-1)).toMatchObject({
      url: '/v1beta/models/embedding-test:batchEmbedContents',
      json: {
        requests: [
          { model: 'models/embedding-test', content: { parts: [{ text: 'a' }] } },
          { model: 'models/embedding-test', content: { parts: [{ text: 'bcde' }] } },
        ],
      },
    });
    const floats = await sdk.embeddings.create({
      model: 'embedding-test',
      input: 'x',
      encoding_format: 'float',
      dimensions: 3,
    });
    expect(floats.data[0]!.embedding).toEqual([0, 0.25, 0.5]);
    expect(fake.requests.at(-1)!.json.requests[0].outputDimensionality).toBe(3);
    // Token ids: Gemini embeds text only, so its endpoint is skipped and the client told why (a 400,
    // not a retryable 503); a text completion likewise.
    const seen = fake.requests.length;
    for (const [route, body] of [
      ['/v1/embeddings', { model: 'embedding-test', input: [[1, 2, 3]] }],
      ['/v1/completions', { model: 'gemini-test', prompt: 'x' }],
    ] as const) {
      const res = await fetch(`${gw.url}${route}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status, route).toBe(400);
      const error = ((await res.json()) as { error: { code: string; message: string } }).error;
      expect(error.code).toBe('route_not_served');
      expect(error.message).toContain(`serves ${route}`);
    }
    expect(fake.requests).toHaveLength(seen);
  });
});
