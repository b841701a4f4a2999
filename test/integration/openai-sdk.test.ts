import OpenAI, {
  APIError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  NotFoundError,
} from 'openai';
import { describe, expect, it } from 'vitest';
import { streamEvents, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, type TestGateway } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();

async function setup(
  options: { models?: string[] } = {},
): Promise<{ upstream: FakeUpstream; client: OpenAI; gw: TestGateway }> {
  const upstream = await bed.upstream({ name: 'a', models: options.models ?? ['test-model'] });
  const gw = await bed.gateway({ endpoints: [{ url: upstream.url, name: 'a', apiKey: 'sk-upstream-a' }] });
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 10_000 });
  return { upstream, client, gw };
}

const messages = [{ role: 'user' as const, content: 'hi' }];
const noError = (): undefined => undefined;

describe('openai SDK v6 against the gateway', () => {
  it('lists models with owned_by proxy', async () => {
    const { client } = await setup({ models: ['test-model', 'other-model'] });
    const ids: string[] = [];
    for await (const model of client.models.list()) {
      expect(model.owned_by).toBe('proxy');
      expect(model.object).toBe('model');
      ids.push(model.id);
    }
    expect(ids.sort()).toEqual(['other-model', 'test-model']);
  });

  it('creates a non-streaming chat completion', async () => {
    const { client, upstream } = await setup();
    upstream.script({ type: 'answer', text: 'Plain answer here.' });
    const completion = await client.chat.completions.create({ model: 'test-model', messages });
    expect(completion.choices[0]?.message.content).toBe('Plain answer here.');
    expect(completion.choices[0]?.finish_reason).toBe('stop');
  });

  it('streams chunks whose deltas join to the upstream text', async () => {
    const { client, upstream } = await setup();
    const text = 'The quick brown fox jumps over the lazy dog.';
    upstream.script({ type: 'sse', text, delayMs: 5 });
    const stream = await client.chat.completions.create({ model: 'test-model', messages, stream: true });
    let joined = '';
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      joined += chunk.choices[0]?.delta.content ?? '';
    }
    expect(joined).toBe(text);
    expect(chunks).toBe(streamEvents('test-model', text).length);
  });

  it('passes a function tool through byte for byte and returns tool_calls intact', async () => {
    const { client, upstream } = await setup();
    const toolCalls = [
      {
        id: 'call_abc123',
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Zürich","unit":"celsius"}' },
      },
    ];
    upstream.script({
      type: 'json',
      body: {
        id: 'chatcmpl-tools',
        object: 'chat.completion',
        created: 1700000000,
        model: 'test-model',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: null, tool_calls: toolCalls },
            finish_reason: 'tool_calls',
          },
        ],
      },
    });
    const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Current weather for a city',
          parameters: {
            type: 'object',
            properties: {
              city: { type: 'string' },
              unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
            },
            required: ['city'],
            additionalProperties: false,
          },
          strict: true,
        },
      },
    ];
    const completion = await client.chat.completions.create({ model: 'test-model', messages, tools });
    expect(completion.choices[0]?.finish_reason).toBe('tool_calls');
    expect(completion.choices[0]?.message.tool_calls).toEqual(toolCalls);
    const received = upstream.requests[0]!;
    expect(JSON.stringify(received.json?.tools)).toBe(JSON.stringify(tools));
    // The SDK serialises with JSON.stringify: the bytes of the tools array must appear unchanged.
    expect(received.body.toString('utf8')).toContain(`"tools":${JSON.stringify(tools)}`);
  });

  it('aborting a stream mid-way ends the SDK iteration and closes the upstream socket within 100 ms', async () => {
    const { client, upstream } = await setup();
    const text = Array.from({ length: 40 }, (_, i) => `w${i} `).join('');
    upstream.script({ type: 'sse', text, delayMs: 50 });
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'test-model', messages, stream: true },
      { signal: controller.signal },
    );
    const recorded = await upstream.waitForRequest(1);
    let received = 0;
    let abortedAt = 0;
    let thrown: unknown;
    try {
      for await (const chunk of stream) {
        received++;
        if (chunk.choices[0]?.delta.content && abortedAt === 0) {
          abortedAt = Date.now();
          controller.abort();
        }
      }
    } catch (err) {
      thrown = err;
    }
    expect(abortedAt).toBeGreaterThan(0);
    // The SDK either surfaces an abort error or ends the iteration early (its documented behaviour
    // for aborted streams); it must never deliver the rest of the answer.
    if (thrown !== undefined) expect(thrown).toBeInstanceOf(APIUserAbortError);
    expect(received).toBeLessThan(streamEvents('test-model', text).length);
    const closedAt = await recorded.closed;
    expect(closedAt - abortedAt).toBeLessThan(100);
  });

  it('aborting while waiting for the first token rejects with APIUserAbortError and closes the upstream', async () => {
    const { client, upstream } = await setup();
    upstream.script({ type: 'sse', text: 'late answer', firstDelayMs: 5_000 });
    const controller = new AbortController();
    const pending = client.chat.completions
      .create({ model: 'test-model', messages, stream: true }, { signal: controller.signal })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    const recorded = await upstream.waitForRequest(1);
    const abortedAt = Date.now();
    controller.abort();
    expect(await pending).toBeInstanceOf(APIUserAbortError);
    const closedAt = await recorded.closed;
    expect(closedAt - abortedAt).toBeLessThan(100);
  });

  it('maps an upstream 400 to BadRequestError with the upstream message', async () => {
    const { client, upstream } = await setup();
    const message = "This model's maximum context length is 8192 tokens.";
    upstream.script({
      type: 'status',
      status: 400,
      body: { error: { message, type: 'invalid_request_error', code: 'context_length_exceeded' } },
    });
    const err = await client.chat.completions
      .create({ model: 'test-model', messages })
      .then(noError, (e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).status).toBe(400);
    expect((err as BadRequestError).error).toMatchObject({ message });
    expect((err as BadRequestError).message).toContain(message);
    expect(upstream.requests).toHaveLength(1);
  });

  it('maps a wrong key to AuthenticationError (401)', async () => {
    const { upstream, gw } = await setup();
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-wrong-key', maxRetries: 0 });
    const err = await client.chat.completions
      .create({ model: 'test-model', messages })
      .then(noError, (e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect((err as AuthenticationError).status).toBe(401);
    expect(upstream.requests).toHaveLength(0);
  });

  it('maps an unknown model to NotFoundError', async () => {
    const { client, upstream } = await setup();
    const err = await client.chat.completions
      .create({ model: 'no-such-model', messages })
      .then(noError, (e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).status).toBe(404);
    expect((err as NotFoundError).message).toContain('no-such-model');
    expect(upstream.requests).toHaveLength(0);
  });

  it('a mid-stream upstream death makes the iteration throw after delivering the earlier chunks', async () => {
    const { client, upstream } = await setup();
    // The fake upstream destroys its socket right after its last write, which can drop that write
    // (node corks chunked writes until the next tick): the 4th event is a sacrificial one.
    const events = streamEvents('test-model', 'one two three four').slice(0, 4);
    // The lone endpoint fails the continuation too.
    upstream.script(
      { type: 'sse', events, delayMs: 5, then: 'reset' },
      { type: 'status', status: 503 },
      { type: 'status', status: 503 },
    );
    const stream = await client.chat.completions.create({ model: 'test-model', messages, stream: true });
    let joined = '';
    let received = 0;
    let thrown: unknown;
    try {
      for await (const chunk of stream) {
        received++;
        joined += chunk.choices[0]?.delta.content ?? '';
      }
    } catch (err) {
      thrown = err;
    }
    expect(received).toBeGreaterThanOrEqual(3);
    expect(['one two ', 'one two three ']).toContain(joined);
    expect(thrown).toBeInstanceOf(APIError);
    expect((thrown as APIError).message).toMatch(/lost mid-answer|incomplete/);
  });
});
