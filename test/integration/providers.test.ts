import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { ANTHROPIC_KEY, FakeAnthropic } from '../helpers/fake-anthropic.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

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
    const { fake, backup, sdk } = await start({ fallback: true, models: ['claude-test'] });
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
