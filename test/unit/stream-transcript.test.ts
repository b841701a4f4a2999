import { describe, expect, it } from 'vitest';
import { Splicer } from '../../src/services/continuation/splicer.js';
import { StreamTranscript, TranscriptBudget } from '../../src/services/streaming/transcript.js';

const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  Buffer.from(
    `data: ${JSON.stringify({ id: 'c1', created: 7, model: 'm', choices: [{ index: 0, delta, finish_reason: null, ...extra }] })}\n\n`,
  );
const role = chunk({ role: 'assistant', content: '' });
const word = (w: string) => chunk({ content: w });

function transcript(options: { keepText?: boolean; maxBytes?: number; budget?: TranscriptBudget } = {}) {
  return new StreamTranscript({
    keepText: options.keepText ?? true,
    maxBytes: options.maxBytes ?? 1024 * 1024,
    budget: options.budget ?? new TranscriptBudget(64 * 1024 * 1024),
  });
}

describe('StreamTranscript', () => {
  it('says how a break can be repaired: restart, continue, complete, or not at all', () => {
    const t = transcript();
    t.feed(role);
    expect(t.continuation).toBe('restart');
    t.feed(word('Hello'));
    expect(t.continuation).toBe('continue');
    expect(t.text).toBe('Hello');
    expect([t.id, t.created, t.model]).toEqual(['c1', 7, 'm']);
    t.feed(chunk({}, { finish_reason: 'stop' }));
    expect(t.continuation).toBe('complete');

    const tools = transcript();
    tools.feed(role);
    tools.feed(chunk({ tool_calls: [{ index: 0, function: { arguments: '{' } }] }));
    expect(tools.continuation).toBeUndefined();

    const reasoning = transcript();
    reasoning.feed(role);
    reasoning.feed(chunk({ reasoning_content: 'Let me think' }));
    expect(reasoning.continuation).toBeUndefined();
  });

  it('without text kept (continuation off): restart before any text, nothing after', () => {
    const t = transcript({ keepText: false });
    t.feed(role);
    expect(t.continuation).toBe('restart');
    t.feed(word('Hi'));
    expect(t.continuation).toBeUndefined();
    expect(t.text).toBe('');
    t.feed(chunk({}, { finish_reason: 'length' }));
    expect(t.continuation).toBe('complete');
  });

  it('past CONTINUATION_MAX_BYTES it gives up its text and its stream cannot be continued', () => {
    const budget = new TranscriptBudget(1024 * 1024);
    const t = transcript({ maxBytes: 16 * 1024, budget });
    t.feed(role);
    for (let i = 0; i < 200; i++) t.feed(word('0123456789'.repeat(10)));
    expect(t.continuation).toBeUndefined();
    expect(t.text).toBe('');
    expect(budget.used).toBe(0);
  });

  it('takes from a shared budget, gives it back when disposed, and a stream over it is not continued', () => {
    const budget = new TranscriptBudget(20 * 1024);
    const first = transcript({ budget });
    const second = transcript({ budget });
    first.feed(role);
    first.feed(word('a'.repeat(5000)));
    expect(first.continuation).toBe('continue');
    const used = budget.used;
    expect(used).toBeGreaterThan(5000);
    second.feed(role);
    second.feed(word('b'.repeat(5000)));
    // The second cannot get its buffer and its text from what is left.
    expect(second.continuation).toBeUndefined();
    expect(budget.used).toBe(used);
    first.dispose();
    expect(budget.used).toBe(0);
    second.dispose();
    expect(budget.used).toBe(0);
  });
});

describe('Splicer', () => {
  it('restart: passes events on without the role the client already has, in the first stream’s name', () => {
    const t = transcript();
    t.feed(role);
    expect(t.continuation).toBe('restart');
    const splicer = new Splicer(t, 'restart');
    const again = (delta: Record<string, unknown>, finish: string | null = null) =>
      JSON.stringify({
        id: 'other',
        created: 9,
        model: 'm2',
        choices: [{ index: 0, delta, finish_reason: finish }],
      });
    expect(splicer.payload(again({ role: 'assistant', content: '' })).out).toBe('');
    const out = splicer.payload(again({ content: 'Hi' })).out;
    expect(JSON.parse(out.slice(6))).toMatchObject({
      id: 'c1',
      created: 7,
      model: 'm',
      choices: [{ delta: { content: 'Hi' } }],
    });
    expect(t.text).toBe('Hi');
    expect(splicer.payload('[DONE]')).toEqual({ out: 'data: [DONE]\n\n', done: true });
  });

  it('refuses an error event or an event that is not JSON: nothing of it may reach the client', () => {
    const t = transcript();
    t.feed(role);
    t.feed(word('Hello'));
    const splicer = new Splicer(t, 'continue');
    expect(() => splicer.payload('{"error":{"message":"boom"}}')).toThrow('boom');
    expect(() => splicer.payload('{"object":"error","message":"old vLLM"}')).toThrow('old vLLM');
    expect(() => splicer.payload('{"id": nope')).toThrow(/not JSON/);
  });
});
