import Anthropic from '@anthropic-ai/sdk';
import { describe, expect, it } from 'vitest';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

/** Anthropic SDK clients (Claude Code among them) on the open models behind the gateway. */
describe('POST /v1/messages: Anthropic’s Messages API in front of any endpoint', () => {
  const bed = useTestBed();

  async function start() {
    const upstream = await bed.upstream({ name: 'vllm', models: ['llama'] });
    const gw = await bed.gateway({ endpoints: [{ url: upstream.url, name: 'vllm' }] });
    const sdk = new Anthropic({ apiKey: CLIENT_KEY, baseURL: gw.url, maxRetries: 0 });
    return { upstream, gw, sdk };
  }

  const chunk = (delta: object, finish: string | null = null, extra: object = {}) =>
    JSON.stringify({
      id: 'chatcmpl-tool',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'llama',
      choices: [{ index: 0, delta, finish_reason: finish }],
      ...extra,
    });

  it('JSON: the request becomes a chat completion, the answer a message (key as x-api-key)', async () => {
    const { upstream, sdk } = await start();
    upstream.defaultBehavior = { type: 'answer', text: 'the answer is 42' };
    const message = await sdk.messages.create({
      model: 'llama',
      max_tokens: 100,
      system: [{ type: 'text', text: 'Be brief.' }],
      stop_sequences: ['END'],
      output_config: { format: { type: 'json_schema', schema: { type: 'object' } }, effort: 'low' },
      metadata: { user_id: 'u-1' },
      messages: [
        { role: 'user', content: 'What is the answer?' },
        { role: 'assistant', content: [{ type: 'text', text: 'Let me think.' }] },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Go on.' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          ],
        },
      ],
    });
    expect(message).toMatchObject({
      id: 'msg_test',
      type: 'message',
      role: 'assistant',
      model: 'llama',
      content: [{ type: 'text', text: 'the answer is 42' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 5, output_tokens: 4 },
    });
    const request = upstream.requests[0]!;
    // The client sent x-api-key; the gateway's own key went upstream, never the client's header.
    expect(request.headers['x-api-key']).toBeUndefined();
    expect(request.json).toEqual({
      model: 'llama',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'What is the answer?' },
        { role: 'assistant', content: 'Let me think.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Go on.' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          ],
        },
      ],
      max_tokens: 100,
      stop: ['END'],
      user: 'u-1',
      response_format: { type: 'json_schema', json_schema: { name: 'output', schema: { type: 'object' } } },
      reasoning_effort: 'low',
    });
  });

  it('streams: each chunk becomes Anthropic’s events in their order, usage in message_delta', async () => {
    const { upstream, gw, sdk } = await start();
    upstream.defaultBehavior = { type: 'answer', text: 'one two three' };
    const stream = sdk.messages.stream({
      model: 'llama',
      max_tokens: 20,
      messages: [{ role: 'user', content: 'count' }],
    });
    const texts: string[] = [];
    stream.on('text', (t) => texts.push(t));
    const final = await stream.finalMessage();
    expect(texts).toEqual(['one ', 'two ', 'three']);
    expect(final.content).toEqual([{ type: 'text', text: 'one two three' }]);
    expect(final.stop_reason).toBe('end_turn');
    // The real usage (the upstream's usage chunk, asked for by the gateway) replaces the estimate.
    expect(final.usage).toMatchObject({ input_tokens: 50, output_tokens: 7 });
    expect(upstream.requests[0]!.json).toMatchObject({
      stream: true,
      stream_options: { include_usage: true },
    });

    // max_tokens reached: the model server stops (the demo's, a word a token) and says so.
    const cut = await sdk.messages.create({
      model: 'llama',
      max_tokens: 2,
      messages: [{ role: 'user', content: 'count' }],
    });
    expect(cut).toMatchObject({ content: [{ type: 'text', text: 'one two ' }], stop_reason: 'max_tokens' });

    // The raw wire: event names match their payload types, in Anthropic's documented order.
    const res = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: {
        'x-api-key': CLIENT_KEY,
        'content-type': 'application/json',
        'anthropic-version': '2023-06-01',
      },
      body: JSON.stringify({
        model: 'llama',
        max_tokens: 5,
        stream: true,
        messages: [{ role: 'user', content: 'hi' }],
      }),
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    expect(res.headers.get('request-id')).toBeTruthy();
    const events = (await res.text())
      .split('\n\n')
      .filter(Boolean)
      .map((e) => {
        const [name, data] = e.split('\n');
        const payload = JSON.parse(data!.slice('data: '.length)) as { type: string };
        expect(name).toBe(`event: ${payload.type}`);
        return payload.type;
      });
    expect(events).toEqual([
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
  });

  it('tools both ways: tool definitions and choice go as OpenAI tools, a streamed tool call comes back as tool_use, tool_result goes as a tool message', async () => {
    const { upstream, sdk } = await start();
    const tools = [
      {
        name: 'weather',
        description: 'The weather in a city',
        input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } },
      },
    ];
    upstream.script({
      type: 'sse',
      events: [
        chunk({ role: 'assistant', content: 'Checking.' }),
        chunk({
          tool_calls: [
            { index: 0, id: 'call_1', type: 'function', function: { name: 'weather', arguments: '' } },
          ],
        }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }),
        chunk({}, 'tool_calls'),
        JSON.stringify({
          id: 'chatcmpl-tool',
          object: 'chat.completion.chunk',
          created: 1,
          model: 'llama',
          choices: [],
          usage: { prompt_tokens: 30, completion_tokens: 9, total_tokens: 39 },
        }),
      ],
    });
    const final = await sdk.messages
      .stream({
        model: 'llama',
        max_tokens: 50,
        tools,
        tool_choice: { type: 'any', disable_parallel_tool_use: true },
        messages: [{ role: 'user', content: 'weather in Paris?' }],
      })
      .finalMessage();
    expect(final.stop_reason).toBe('tool_use');
    expect(final.content).toEqual([
      { type: 'text', text: 'Checking.' },
      { type: 'tool_use', id: 'call_1', name: 'weather', input: { city: 'Paris' } },
    ]);
    expect(final.usage).toMatchObject({ input_tokens: 30, output_tokens: 9 });
    expect(upstream.requests[0]!.json).toMatchObject({
      tools: [
        {
          type: 'function',
          function: {
            name: 'weather',
            description: 'The weather in a city',
            parameters: tools[0]!.input_schema,
          },
        },
      ],
      tool_choice: 'required',
      parallel_tool_calls: false,
    });

    // The follow-up: the assistant's tool_use and the user's tool_result, then a JSON tool answer.
    upstream.script({
      type: 'json',
      body: {
        id: 'chatcmpl-2',
        object: 'chat.completion',
        created: 1,
        model: 'llama',
        choices: [
          {
            index: 0,
            message: {
              role: 'assistant',
              content: null,
              tool_calls: [
                {
                  id: 'call_2',
                  type: 'function',
                  function: { name: 'weather', arguments: '{"city":"Lyon"}' },
                },
              ],
            },
            finish_reason: 'tool_calls',
          },
        ],
        usage: { prompt_tokens: 40, completion_tokens: 8, total_tokens: 48 },
      },
    });
    const next = await sdk.messages.create({
      model: 'llama',
      max_tokens: 50,
      tools,
      tool_choice: { type: 'tool', name: 'weather' },
      messages: [
        { role: 'user', content: 'weather in Paris?' },
        { role: 'assistant', content: final.content },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_1', content: [{ type: 'text', text: 'Sunny, 21°C' }] },
            { type: 'text', text: 'And Lyon?' },
          ],
        },
      ],
    });
    expect(next).toMatchObject({
      id: 'msg_2',
      content: [{ type: 'tool_use', id: 'call_2', name: 'weather', input: { city: 'Lyon' } }],
      stop_reason: 'tool_use',
      usage: { input_tokens: 40, output_tokens: 8 },
    });
    expect(upstream.requests[1]!.json).toMatchObject({
      tool_choice: { type: 'function', function: { name: 'weather' } },
      messages: [
        { role: 'user', content: 'weather in Paris?' },
        {
          role: 'assistant',
          content: 'Checking.',
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: 'Sunny, 21°C' },
        { role: 'user', content: 'And Lyon?' },
      ],
    });
  });

  it('errors come in Anthropic’s shape, as the SDK’s error classes', async () => {
    const { upstream, gw, sdk } = await start();
    const unknown = await sdk.messages
      .create({ model: 'nope', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(Anthropic.NotFoundError);
    expect((unknown as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({
      type: 'error',
      error: { type: 'not_found_error' },
    });

    const badKey = new Anthropic({ apiKey: 'not-a-key-0123456789', baseURL: gw.url, maxRetries: 0 });
    const auth = await badKey.messages
      .create({ model: 'llama', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(auth).toBeInstanceOf(Anthropic.AuthenticationError);
    expect(JSON.stringify((auth as InstanceType<typeof Anthropic.APIError>).error)).not.toContain(
      'not-a-key',
    );
    // Two words in x-api-key: said of that header, not of an Authorization header never sent.
    const spaced = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': `${CLIENT_KEY} extra` },
      body: '{}',
    });
    expect(spaced.status).toBe(401);
    expect(((await spaced.json()) as { error: { message: string } }).error.message).toContain(
      'Malformed x-api-key header',
    );
    // No key at all: the 401 names the header Anthropic clients use.
    const none = await fetch(`${gw.url}/v1/messages`, { method: 'POST', body: '{}' });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({
      type: 'error',
      error: {
        type: 'authentication_error',
        message: expect.stringContaining("'x-api-key: <your key>'"),
        // The gateway's own code beside Anthropic's type: which 401 this is, for programs.
        code: 'missing_api_key',
      },
    });

    // Bad bodies: 400 naming the field, in Anthropic's shape.
    const post = async (body: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(`${gw.url}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      return {
        status: res.status,
        body: (await res.json()) as { type: string; error: { type: string; message: string } },
      };
    };
    for (const [body, says] of [
      ['{not json', 'not valid JSON'],
      [{ model: 'llama' }, "'messages'"],
      [{ model: 'llama', messages: [{ role: 'system', content: 'x' }] }, "'role'"],
      [{ model: 'llama', max_tokens: 0, messages: [{ role: 'user', content: 'x' }] }, "'max_tokens'"],
      [
        { model: 'llama', messages: [{ role: 'user', content: [{ type: 'server_tool_use' }] }] },
        'server_tool_use',
      ],
      [
        {
          model: 'llama',
          messages: [{ role: 'user', content: 'x' }],
          tools: [{ type: 'web_search_20250305', name: 'web_search' }],
        },
        'server tools',
      ],
    ] as const) {
      const r = await post(body);
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
      expect(r.body.error.message).toContain(says);
    }
    expect(upstream.requests).toHaveLength(0);

    // An upstream failure on every endpoint: the chat route's status, as Anthropic's error type.
    upstream.defaultBehavior = { type: 'status', status: 503, body: { error: { message: 'busy' } } };
    const busy = await sdk.messages
      .create({ model: 'llama', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(Anthropic.APIError);
    expect((busy as InstanceType<typeof Anthropic.APIError>).status).toBeGreaterThanOrEqual(500);

    const get = await fetch(`${gw.url}/v1/messages`, { headers: { 'x-api-key': CLIENT_KEY } });
    expect(get.status).toBe(405);
    expect(await get.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    // Anthropic's other routes: a 404 in its shape. A base URL with /v1 gets a hint.
    const batches = await fetch(`${gw.url}/v1/messages/batches`, {
      method: 'POST',
      headers: { 'x-api-key': CLIENT_KEY },
    });
    expect(batches.status).toBe(404);
    expect(await batches.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    const twice = await fetch(`${gw.url}/v1/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}` },
    });
    expect(((await twice.json()) as { error: { message: string } }).error.message).toContain('/v1 twice');
    // The route's own access line says which model and why it failed.
    const line = (
      gw.logs as Array<{
        req?: { url: string };
        model?: string;
        errorCode?: string;
        res?: { statusCode: number };
      }>
    ).find((l) => l.req?.url === '/v1/messages' && l.res?.statusCode === 404);
    expect(line).toMatchObject({ model: 'nope', errorCode: 'model_not_found' });
  });

  it('count_tokens answers an estimate for a model the caller may use', async () => {
    const { sdk } = await start();
    const counted = await sdk.messages.countTokens({
      model: 'llama',
      system: 'You are terse.',
      messages: [{ role: 'user', content: 'How many tokens is this sentence, roughly?' }],
    });
    expect(counted.input_tokens).toBeGreaterThan(10);
    expect(counted.input_tokens).toBeLessThan(40);
    const unknown = await sdk.messages
      .countTokens({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(Anthropic.NotFoundError);
  });

  it('a stream broken after it started ends with Anthropic’s error event, which the SDK raises', async () => {
    const upstream = await bed.upstream({ name: 'vllm', models: ['llama'] });
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'vllm' }],
      env: { CONTINUATION: 'false' },
    });
    const sdk = new Anthropic({ apiKey: CLIENT_KEY, baseURL: gw.url, maxRetries: 0 });
    upstream.defaultBehavior = { type: 'answer', text: 'a b c d e f', dieAfterWords: 2 };
    const stream = sdk.messages.stream({
      model: 'llama',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'x' }],
    });
    const texts: string[] = [];
    stream.on('text', (t) => texts.push(t));
    const err = await stream.finalMessage().catch((e: unknown) => e);
    expect(texts.join('')).toBe('a b ');
    expect(err).toBeInstanceOf(Anthropic.APIError);
    // The SDK tells the error event's message and type.
    expect((err as Error).message).toContain('lost mid-answer');
    expect((err as Error).message).toContain('type: api_error');
    // The event carries the gateway's code of the break too.
    const events = await (await streamMessage(gw.url, 50)).text();
    const broken = /event: error\ndata: (.*)\n/.exec(events);
    expect(JSON.parse(broken![1]!)).toMatchObject({
      type: 'error',
      error: { type: 'api_error', code: 'upstream_stream_error' },
    });
  });

  it('many long streams at once: none waits for another (no cap on the loopback)', async () => {
    const { upstream, gw } = await start();
    upstream.defaultBehavior = { type: 'hang-after-headers' };
    const aborts = Array.from({ length: 24 }, () => new AbortController());
    const pending = aborts.map((a) => streamMessage(gw.url, 5, a.signal).catch(() => undefined));
    // All 24 reach the model server while every one of them is still open.
    await upstream.waitForRequest(24);
    for (const a of aborts) a.abort();
    await Promise.all(pending);
  });

  it('a long wait for the first token: message_start and pings at once, the text after; client headers go through', async () => {
    const upstream = await bed.upstream({ name: 'vllm', models: ['llama'] });
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'vllm' }],
      env: { HEARTBEAT_INTERVAL_MS: '50' },
    });
    upstream.defaultBehavior = { type: 'answer', text: 'late', firstTokenMs: 400 };
    const res = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: {
        'x-api-key': CLIENT_KEY,
        'content-type': 'application/json',
        'x-session-id': 'session-7',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      },
      body: JSON.stringify({
        model: 'llama',
        max_tokens: 5,
        stream: true,
        messages: [{ role: 'user', content: 'x' }],
      }),
    });
    const types = (await res.text())
      .split('\n\n')
      .filter(Boolean)
      .map((e) => (JSON.parse(e.split('\n')[1]!.slice(6)) as { type: string }).type);
    const firstText = types.indexOf('content_block_start');
    expect(types[0]).toBe('message_start');
    // Heartbeats came while the model was silent: pings before the text.
    expect(types.slice(1, firstText).filter((t) => t === 'ping').length).toBeGreaterThanOrEqual(2);
    expect(types.slice(-2)).toEqual(['message_delta', 'message_stop']);
    // What the chat route reads from a client's headers reaches it (session affinity, trace context).
    expect(upstream.requests[0]!.headers.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-/);

    // The per-request timeout header applies too.
    upstream.defaultBehavior = { type: 'hang' };
    const started = Date.now();
    const timedOut = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: {
        'x-api-key': CLIENT_KEY,
        'content-type': 'application/json',
        'x-gateway-request-timeout-ms': '300',
      },
      body: JSON.stringify({ model: 'llama', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(timedOut.status).toBe(504);
    expect(await timedOut.json()).toMatchObject({ type: 'error', error: { type: 'timeout_error' } });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('the client leaving mid-stream stops the upstream call', async () => {
    const { upstream, sdk } = await start();
    upstream.defaultBehavior = { type: 'answer', text: 'a b c d e f g h i j', tokenMs: 200 };
    const stream = sdk.messages.stream({
      model: 'llama',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'slow' }],
    });
    const ended = stream.finalMessage().catch((e: unknown) => e);
    await new Promise<void>((resolve) => stream.once('text', () => resolve()));
    stream.abort();
    expect(await ended).toBeInstanceOf(Anthropic.APIUserAbortError);
    await upstream.requests[0]!.closed;
    expect(upstream.requests).toHaveLength(1);
  });
});

/** A streamed /v1/messages request for model `llama`, sent with fetch (the raw events, not the SDK's). */
function streamMessage(url: string, maxTokens: number, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}/v1/messages`, {
    method: 'POST',
    ...(signal ? { signal } : {}),
    headers: { 'x-api-key': CLIENT_KEY, 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'llama',
      max_tokens: maxTokens,
      stream: true,
      messages: [{ role: 'user', content: 'x' }],
    }),
  });
}
