import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { EndpointConfig } from '../../src/config/types.js';
import type { ProviderName } from '../../src/config/providers.js';
import { providerOf } from '../../src/services/providers/providers.js';

/**
 * Event sequences recorded from the providers' public documentation (test/fixtures/providers, each
 * file names its source), translated by the adapters into OpenAI chunks, whatever the byte boundaries.
 */
const fixture = (name: string) => readFileSync(new URL(`../fixtures/providers/${name}`, import.meta.url));

function answerOf(provider: ProviderName) {
  const json = {
    model: 'm',
    messages: [{ role: 'user', content: 'hi' }],
    stream: true,
    stream_options: { include_usage: true },
  };
  return providerOf({ provider }).translate!({
    endpoint: { name: 'e', url: 'http://127.0.0.1:1', provider } as EndpointConfig,
    path: '/v1/chat/completions',
    json,
    model: 'm',
    stream: true,
    now: () => 1_700_000_000_000,
  }).answer;
}

interface Assembled {
  text: string;
  reasoning: string;
  calls: Array<{ id: string; name: string; args: string }>;
  finish: string | null;
  usage: Record<string, unknown> | undefined;
  errors: unknown[];
  done: boolean;
  chunks: number;
}

/** OpenAI chunk events put back together, as a client would. */
function assemble(wire: string): Assembled {
  const a: Assembled = {
    text: '',
    reasoning: '',
    calls: [],
    finish: null,
    usage: undefined,
    errors: [],
    done: false,
    chunks: 0,
  };
  for (const event of wire.split('\n\n').filter(Boolean)) {
    expect(event.startsWith('data: ')).toBe(true);
    const data = event.slice(6);
    expect(a.done).toBe(false);
    if (data === '[DONE]') {
      a.done = true;
      continue;
    }
    const chunk = JSON.parse(data) as Record<string, any>;
    if (chunk.error) {
      a.errors.push(chunk.error);
      continue;
    }
    a.chunks++;
    expect(chunk.object).toBe('chat.completion.chunk');
    if (chunk.usage) a.usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    a.text += choice.delta.content ?? '';
    a.reasoning += choice.delta.reasoning_content ?? '';
    for (const t of choice.delta.tool_calls ?? []) {
      a.calls[t.index] ??= { id: '', name: '', args: '' };
      const call = a.calls[t.index]!;
      if (t.id) call.id = t.id;
      if (t.function?.name) call.name = t.function.name;
      call.args += t.function?.arguments ?? '';
    }
    if (choice.finish_reason) a.finish = choice.finish_reason;
  }
  return a;
}

/** The fixture fed in pieces of `step` bytes (Infinity: whole), then the end of the response. */
function translate(provider: ProviderName, file: string, step: number): string {
  const answer = answerOf(provider);
  const bytes = fixture(file);
  let out = '';
  const size = Number.isFinite(step) ? step : bytes.length;
  for (let i = 0; i < bytes.length; i += size) out += answer.events(bytes.subarray(i, i + size)).toString();
  return out + answer.end().toString();
}

const STEPS = [Infinity, 1, 7, 64];

describe('Anthropic stream fixtures as OpenAI chunks', () => {
  it.each(STEPS)('text (pieces of %s bytes): every delta, the stop reason, usage, [DONE]', (step) => {
    const a = assemble(translate('anthropic', 'anthropic-text.sse', step));
    expect(a).toMatchObject({ text: 'Hello! Ça va ?', finish: 'stop', done: true, errors: [] });
    expect(a.usage).toEqual({ prompt_tokens: 25, completion_tokens: 15, total_tokens: 40 });
  });

  it.each(STEPS)('tool use (pieces of %s bytes): text, then the call with its arguments', (step) => {
    const a = assemble(translate('anthropic', 'anthropic-tool-use.sse', step));
    expect(a.text).toBe('Okay, let me check the weather.');
    expect(a.calls).toEqual([
      {
        id: 'toolu_01FixtureWeather',
        name: 'get_weather',
        args: '{"location": "San Francisco, CA", "unit": "fahrenheit"}',
      },
    ]);
    expect(JSON.parse(a.calls[0]!.args)).toEqual({ location: 'San Francisco, CA', unit: 'fahrenheit' });
    expect(a).toMatchObject({ finish: 'tool_calls', done: true });
    expect(a.usage).toEqual({ prompt_tokens: 472, completion_tokens: 89, total_tokens: 561 });
  });

  it('extended thinking comes as reasoning_content, the signature left out', () => {
    const a = assemble(translate('anthropic', 'anthropic-thinking.sse', Infinity));
    expect(a).toMatchObject({
      reasoning: '27 * 453 = 12231',
      text: '27 * 453 = 12,231',
      finish: 'stop',
      done: true,
    });
  });

  it('an error event after the start ends the stream with an error event and no [DONE]', () => {
    const a = assemble(translate('anthropic', 'anthropic-overloaded.sse', 5));
    expect(a.text).toBe('Partial');
    expect(a.errors).toEqual([{ message: 'Overloaded', type: 'overloaded_error' }]);
    expect(a.done).toBe(false);
  });

  it('nothing is held back: each delta event gives its chunk as soon as it is whole', () => {
    const answer = answerOf('anthropic');
    const events = fixture('anthropic-text.sse')
      .toString('utf8')
      .split(/(?<=\n\n)/);
    const outs = events.map((e) => answer.events(Buffer.from(e)).toString());
    const hello = events.findIndex((e) => e.includes('"Hello"'));
    expect(outs[hello]).toContain('"content":"Hello"');
    // The event cut in two: nothing for its first half, its chunk with its second.
    const next = events[hello + 1]!;
    const cut = next.length - 5;
    expect(answer.events(Buffer.from(next.slice(0, cut))).toString()).toBe('');
    expect(answer.events(Buffer.from(next.slice(cut))).toString()).toContain('Ça va');
  });
});

describe('Gemini stream fixtures as OpenAI chunks', () => {
  it.each(STEPS)(
    'text (pieces of %s bytes, CRLF events): deltas, finish, usage, [DONE] at the close',
    (step) => {
      const a = assemble(translate('gemini', 'gemini-text.sse', step));
      expect(a).toMatchObject({
        text: 'The opposite of hot is cold.',
        finish: 'stop',
        done: true,
        errors: [],
      });
      expect(a.usage).toMatchObject({ prompt_tokens: 8, completion_tokens: 7, total_tokens: 15 });
    },
  );

  it('a function call arrives whole, with an id of the gateway’s', () => {
    const a = assemble(translate('gemini', 'gemini-function-call.sse', 3));
    expect(a.calls).toHaveLength(1);
    expect(a.calls[0]).toMatchObject({ name: 'set_light_values' });
    expect(a.calls[0]!.id).toMatch(/^call_/);
    expect(JSON.parse(a.calls[0]!.args)).toEqual({ brightness: 25, color_temp: 'warm' });
    expect(a).toMatchObject({ finish: 'tool_calls', done: true });
    expect(a.usage).toMatchObject({ prompt_tokens: 96, completion_tokens: 12 });
  });
});
