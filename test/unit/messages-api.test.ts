import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors/gateway-error.js';
import {
  anthropicErrorType,
  chatRequestOf,
  countTokens,
  messageOf,
  MessagesStream,
} from '../../src/http/messages-api.js';

const events = (wire: string) =>
  wire
    .split('\n\n')
    .filter(Boolean)
    .map((e) => JSON.parse(e.split('\n')[1]!.slice(6)) as Record<string, any>);

describe('Messages API requests as chat requests', () => {
  it('documents, tool results with errors and images, thinking dropped, top_k kept', () => {
    const { chat, thinking, stream } = chatRequestOf({
      model: 'm',
      top_k: 20,
      temperature: 0.3,
      thinking: { type: 'enabled', budget_tokens: 1000 },
      messages: [
        {
          role: 'user',
          content: [
            { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'The doc.' } },
            { type: 'text', text: 'Summarise.' },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'hmm', signature: 'sig' },
            { type: 'tool_use', id: 't1', name: 'read', input: { path: '/a' } },
            { type: 'tool_use', id: 't2', name: 'shot', input: {} },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 't1', content: 'no such file', is_error: true },
            {
              type: 'tool_result',
              tool_use_id: 't2',
              content: [{ type: 'image', source: { type: 'url', url: 'https://x/img.png' } }],
            },
          ],
        },
      ],
    });
    expect(thinking).toBe(true);
    expect(stream).toBe(false);
    expect(chat).toEqual({
      model: 'm',
      top_k: 20,
      temperature: 0.3,
      messages: [
        { role: 'user', content: 'The doc.\nSummarise.' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 't1', type: 'function', function: { name: 'read', arguments: '{"path":"/a"}' } },
            { id: 't2', type: 'function', function: { name: 'shot', arguments: '{}' } },
          ],
        },
        { role: 'tool', tool_call_id: 't1', content: 'Error: no such file' },
        { role: 'tool', tool_call_id: 't2', content: '' },
        // A tool result's image follows as the user's, since tool messages carry text.
        { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/img.png' } }] },
      ],
    });
  });

  it('tool_choice none, auto; 400s name the field', () => {
    expect(
      chatRequestOf({ model: 'm', messages: [{ role: 'user', content: 'x' }], tool_choice: { type: 'none' } })
        .chat,
    ).toMatchObject({ tool_choice: 'none' });
    expect(
      chatRequestOf({ model: 'm', messages: [{ role: 'user', content: 'x' }], tool_choice: { type: 'auto' } })
        .chat,
    ).toMatchObject({ tool_choice: 'auto' });
    const param = (body: unknown) => {
      try {
        chatRequestOf(body);
      } catch (err) {
        expect(err).toBeInstanceOf(GatewayError);
        expect((err as GatewayError).status).toBe(400);
        return (err as GatewayError).param;
      }
      throw new Error('accepted');
    };
    expect(param([])).toBe('body');
    expect(param({ messages: [] })).toBe('model');
    expect(
      param({
        model: 'm',
        messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'file' } }] }],
      }),
    ).toBe('messages.0.content.0.source');
    expect(
      param({
        model: 'm',
        messages: [{ role: 'user', content: [{ type: 'tool_use', id: 'a', name: 'b' }] }],
      }),
    ).toBe('messages.0.content.0.type');
    expect(
      param({
        model: 'm',
        messages: [
          {
            role: 'user',
            content: [
              { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: '' } },
            ],
          },
        ],
      }),
    ).toBe('messages.0.content.0.source');
    expect(
      param({ model: 'm', messages: [{ role: 'user', content: 'x' }], tool_choice: { type: 'tool' } }),
    ).toBe('tool_choice.name');
    expect(param({ model: 'm', messages: [{ role: 'user', content: 'x' }], temperature: 'hot' })).toBe(
      'temperature',
    );
    expect(param({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: 'yes' })).toBe('stream');
    expect(
      param({ model: 'm', messages: [{ role: 'user', content: 'x' }], system: [{ type: 'image' }] }),
    ).toBe('system.0');
  });

  it('count_tokens estimates the prompt, tools included', () => {
    const base = { model: 'm', messages: [{ role: 'user', content: 'a'.repeat(400) }] };
    const plain = countTokens(base).input_tokens;
    expect(plain).toBe(104);
    const withTools = countTokens({
      ...base,
      tools: [{ name: 'lookup', input_schema: { type: 'object', properties: { q: { type: 'string' } } } }],
    }).input_tokens;
    expect(withTools).toBeGreaterThan(plain);
  });
});

describe('chat answers as messages', () => {
  it('stop sequences (vLLM names the one matched), length, content filter, cached tokens, thinking', () => {
    const chat = (choice: object, usage: object = { prompt_tokens: 10, completion_tokens: 2 }) => ({
      id: 'chatcmpl-abc',
      choices: [{ index: 0, ...choice }],
      usage,
    });
    expect(
      messageOf(chat({ message: { content: 'hi' }, finish_reason: 'stop', stop_reason: 'END' }), 'm', false),
    ).toMatchObject({
      id: 'msg_abc',
      stop_reason: 'stop_sequence',
      stop_sequence: 'END',
    });
    // A stop token id is no stop sequence.
    expect(
      messageOf(chat({ message: { content: 'hi' }, finish_reason: 'stop', stop_reason: 128009 }), 'm', false),
    ).toMatchObject({
      stop_reason: 'end_turn',
    });
    expect(
      messageOf(chat({ message: { content: 'hi' }, finish_reason: 'length' }), 'm', false).stop_reason,
    ).toBe('max_tokens');
    expect(
      messageOf(chat({ message: { content: '' }, finish_reason: 'content_filter' }), 'm', false),
    ).toMatchObject({
      stop_reason: 'refusal',
      content: [],
    });
    expect(
      messageOf(
        chat(
          { message: { content: 'hi' }, finish_reason: 'stop' },
          { prompt_tokens: 100, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 60 } },
        ),
        'm',
        false,
      ).usage,
    ).toEqual({
      input_tokens: 40,
      output_tokens: 3,
      cache_read_input_tokens: 60,
      cache_creation_input_tokens: 0,
    });
    const reasoning = chat({
      message: { content: 'yes', reasoning_content: 'because' },
      finish_reason: 'stop',
    });
    expect(messageOf(reasoning, 'm', true).content).toEqual([
      { type: 'thinking', thinking: 'because', signature: '' },
      { type: 'text', text: 'yes' },
    ]);
    expect(messageOf(reasoning, 'm', false).content).toEqual([{ type: 'text', text: 'yes' }]);
    // Arguments that are not JSON are kept.
    const slip = chat({
      message: { content: null, tool_calls: [{ id: 'c', function: { name: 'f', arguments: '{oops' } }] },
      finish_reason: 'tool_calls',
    });
    expect(messageOf(slip, 'm', false).content).toEqual([
      { type: 'tool_use', id: 'c', name: 'f', input: { arguments: '{oops' } },
    ]);
  });

  it('error types by status', () => {
    expect([400, 401, 403, 404, 413, 429, 500, 502, 503, 504, 529].map(anthropicErrorType)).toEqual([
      'invalid_request_error',
      'authentication_error',
      'permission_error',
      'not_found_error',
      'request_too_large',
      'rate_limit_error',
      'api_error',
      'api_error',
      'overloaded_error',
      'timeout_error',
      'overloaded_error',
    ]);
  });
});

describe('chat streams as Anthropic events', () => {
  const chunk = (delta: object, finish: string | null = null) => ({
    id: 'chatcmpl-s',
    choices: [{ index: 0, delta, finish_reason: finish }],
  });

  it('thinking, then text, then two tool calls: one block each, closed in order, nothing held back', () => {
    const s = new MessagesStream('m', true, 12);
    const first = events(s.chunk(chunk({ role: 'assistant', reasoning_content: 'Let me see.' })));
    expect(first.map((e) => e.type)).toEqual([
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta',
    ]);
    expect(first[0]!.message).toMatchObject({
      id: 'msg_s',
      model: 'm',
      usage: { input_tokens: 12, output_tokens: 0 },
    });
    expect(first[3]!.delta).toEqual({ type: 'thinking_delta', thinking: 'Let me see.' });
    const text = events(s.chunk(chunk({ content: 'Two calls.' })));
    expect(text.map((e) => [e.type, e.index])).toEqual([
      ['content_block_stop', 0],
      ['content_block_start', 1],
      ['content_block_delta', 1],
    ]);
    const calls = events(
      s.chunk(
        chunk({
          tool_calls: [
            { index: 0, id: 'a', function: { name: 'f', arguments: '{"x":1}' } },
            { index: 1, id: 'b', function: { name: 'g', arguments: '' } },
          ],
        }),
      ),
    );
    // One block at a time: the first call's block ends before the second's starts.
    expect(calls.map((e) => [e.type, e.index, e.delta?.partial_json ?? e.content_block?.id])).toEqual([
      ['content_block_stop', 1, undefined],
      ['content_block_start', 2, 'a'],
      ['content_block_delta', 2, '{"x":1}'],
      ['content_block_stop', 2, undefined],
      ['content_block_start', 3, 'b'],
    ]);
    expect(events(s.chunk(chunk({ tool_calls: [{ index: 1, function: { arguments: '{}' } }] })))).toEqual([
      { type: 'content_block_delta', index: 3, delta: { type: 'input_json_delta', partial_json: '{}' } },
    ]);
    expect(s.chunk(chunk({}, 'tool_calls'))).toBe('');
    expect(
      s.chunk({ id: 'chatcmpl-s', choices: [], usage: { prompt_tokens: 20, completion_tokens: 5 } }),
    ).toBe('');
    expect(events(s.done())).toEqual([
      { type: 'content_block_stop', index: 3 },
      {
        type: 'message_delta',
        delta: { stop_reason: 'tool_use', stop_sequence: null },
        usage: { input_tokens: 20, output_tokens: 5 },
      },
      { type: 'message_stop' },
    ]);
    expect(s.done()).toBe('');
  });

  it('without usage from the model server: the output estimated, the input left as message_start told it', () => {
    const s = new MessagesStream('m', false, 30);
    s.chunk(chunk({ content: 'a'.repeat(40) }));
    s.chunk(chunk({}, 'stop'));
    const end = events(s.done());
    expect(end[1]).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: 10 },
    });
    // JSON: both estimated.
    const json = messageOf(
      { id: 'chatcmpl-x', choices: [{ message: { content: 'b'.repeat(8) }, finish_reason: 'stop' }] },
      'm',
      false,
      30,
    );
    expect(json.usage).toEqual({ input_tokens: 30, output_tokens: 2 });
  });

  it('pings: the message starts with the first, a heartbeat later is a ping', () => {
    const s = new MessagesStream('m', false, 3);
    expect(events(s.ping()).map((e) => e.type)).toEqual(['message_start', 'ping']);
    expect(events(s.ping())).toEqual([{ type: 'ping' }]);
    expect(events(s.chunk(chunk({ content: 'hi' }))).map((e) => e.type)).toEqual([
      'content_block_start',
      'content_block_delta',
    ]);
  });

  it('an empty answer still starts and ends the message; an error ends it once', () => {
    const s = new MessagesStream('m', false, 1);
    expect(events(s.done()).map((e) => e.type)).toEqual([
      'message_start',
      'ping',
      'message_delta',
      'message_stop',
    ]);
    const broken = new MessagesStream('m', false, 1);
    broken.chunk(chunk({ content: 'partial' }));
    expect(events(broken.error(502, 'lost'))).toEqual([
      { type: 'error', error: { type: 'api_error', message: 'lost' } },
    ]);
    expect(broken.error(502, 'again')).toBe('');
    expect(broken.done()).toBe('');
  });
});
