import OpenAI, { APIError } from 'openai';
import { describe, expect, it } from 'vitest';
import { streamEvents, type Behavior } from '../helpers/fake-upstream.js';
import { chat, streamBody } from '../helpers/http.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { readCompletionStream, readStrictSse } from '../helpers/strict-sse.js';
import { useTestBed } from '../helpers/test-bed.js';

/**
 * Issue 9, part 1: a TCP cut lands inside an event more often than between two. Whatever the offset,
 * the client receives only whole events: the answer is whole (repaired), or visibly broken (an error
 * event after whole events), never silently corrupted or unreadable.
 */
const bed = useTestBed();

// Multi-byte characters, so that cuts also land inside a character.
const TEXT = 'Grüße aus Köln — 東京 🙂 and the rest of a perfectly ordinary answer.';
const EVENTS = streamEvents('test-model', TEXT);
const FULL = Buffer.from(`${EVENTS.map((e) => `data: ${e}\n\n`).join('')}data: [DONE]\n\n`);
/** Offsets to cut at: every byte of the role event and the first three content events. */
const CUT_END = Buffer.byteLength(
  EVENTS.slice(0, 4)
    .map((e) => `data: ${e}\n\n`)
    .join(''),
);
const OFFSETS = Array.from({ length: CUT_END + 1 }, (_, i) => i);

/** The text of the whole events before the cut: what the client may have received. */
function wholeTextBefore(at: number): string {
  return readCompletionStream(FULL.subarray(0, at).toString('utf8')).text;
}

/**
 * Endpoint a (priority 1), scripted with `first`, and b (priority 2), which answers `text` and continues
 * a final assistant message as vLLM does.
 */
async function primaryAndBackup(first: Behavior[], env: Record<string, string> = {}, text = TEXT) {
  const a = await bed.upstream('a', ...first);
  const b = await bed.upstream('b');
  b.defaultBehavior = { type: 'answer', text };
  const gw = await bed.gateway({
    endpoints: [
      { url: a.url, name: 'a', priority: 1 },
      { url: b.url, name: 'b', priority: 2 },
    ],
    env,
  });
  return { a, b, gw };
}

async function gatewayWithCuttingUpstream(continuation: boolean) {
  const a = await bed.upstream('a');
  // A lone endpoint: a repair goes to it again (as vLLM, it continues a final assistant message).
  a.defaultBehavior = { type: 'answer', text: TEXT };
  const gw = await bed.gateway({
    endpoints: [{ url: a.url, name: 'a' }],
    env: { CONTINUATION: String(continuation), LOG_LEVEL: 'warn' },
  });
  return { a, gw };
}

describe('an upstream cut inside an SSE event', () => {
  for (const continuation of [true, false]) {
    it(`continuation ${continuation ? 'on' : 'off'}: at every byte offset, whole events only, repaired or visibly broken`, async () => {
      const { a, gw } = await gatewayWithCuttingUpstream(continuation);
      for (const at of OFFSETS) {
        a.script({ type: 'cut', bytes: FULL, at });
        const res = await chat(gw.url, gw.auth, { body: streamBody() });
        const reading = readCompletionStream(res.text);
        const before = wholeTextBefore(at);
        const context = { at, before, raw: res.text };
        expect(res.status, JSON.stringify(context)).toBe(200);
        expect(reading.unfinished, JSON.stringify(context)).toBe('');
        expect(reading.unreadable, JSON.stringify(context)).toEqual([]);
        expect(reading.afterEnd, JSON.stringify(context)).toBe(0);
        expect(reading.roleDeltas, JSON.stringify(context)).toBe(1);
        // Nothing but the role reached the client: a plain retry repairs it, continuation or not.
        if (continuation || before === '') {
          expect({ ...context, text: reading.text, done: reading.done, errors: reading.errors }).toEqual({
            ...context,
            text: TEXT,
            done: 1,
            errors: [],
          });
          expect(reading.finishReasons).toBe(1);
        } else {
          expect({
            ...context,
            text: reading.text,
            done: reading.done,
            errors: reading.errors.length,
          }).toEqual({
            ...context,
            text: before,
            done: 0,
            errors: 1,
          });
          expect(reading.errors[0]!.code).toBe('upstream_stream_error');
        }
      }
    }, 60_000);

    it(`continuation ${continuation ? 'on' : 'off'}: the openai SDK reads every cut stream without a SyntaxError`, async () => {
      const { a, gw } = await gatewayWithCuttingUpstream(continuation);
      const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
      for (const at of OFFSETS) {
        a.script({ type: 'cut', bytes: FULL, at });
        const stream = await client.chat.completions.create({
          model: 'test-model',
          messages: [{ role: 'user', content: 'hi' }],
          stream: true,
        });
        let text = '';
        let thrown: unknown;
        try {
          for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
        } catch (err) {
          thrown = err;
        }
        const before = wholeTextBefore(at);
        if (continuation || before === '') {
          expect({ at, text, thrown }).toEqual({ at, text: TEXT, thrown: undefined });
        } else {
          expect({ at, text }).toEqual({ at, text: before });
          expect(thrown, `at ${at}`).toBeInstanceOf(APIError);
        }
      }
    }, 60_000);
  }

  for (const continuation of [true, false]) {
    it(`continuation ${continuation ? 'on' : 'off'}: a long run of bytes without a line break breaks the stream cleanly`, async () => {
      const { a, gw } = await gatewayWithCuttingUpstream(continuation);
      const head = `data: ${EVENTS[0]}\n\ndata: ${EVENTS[1]}\n\n`;
      a.script({ type: 'raw-sse', chunks: [head, `data: {"x":"${'x'.repeat(1100 * 1024)}`], then: 'hang' });
      const res = await chat(gw.url, gw.auth, { body: streamBody() });
      const reading = readCompletionStream(res.text);
      expect(reading.unfinished).toBe('');
      expect(reading.unreadable).toEqual([]);
      if (continuation) {
        expect(reading.text).toBe(TEXT);
        expect(reading.done).toBe(1);
      } else {
        expect(reading.text).toBe(readCompletionStream(head).text);
        expect(reading.errors.map((e) => e.code)).toEqual(['upstream_invalid_stream']);
        expect(reading.done).toBe(0);
      }
      expect(readStrictSse(res.text).events.length).toBeGreaterThan(1);
    });
  }
});

describe('an in-band error event is a break like any other', () => {
  const errorEvent = JSON.stringify({
    error: {
      object: 'error',
      message: 'CUDA error: an illegal memory access',
      type: 'InternalServerError',
      code: 500,
    },
  });
  /** Role and the first two words, then the error event; then [DONE] (as vLLM does) or nothing. */
  const failing = (then: 'done' | 'end-without-done') => ({
    type: 'sse' as const,
    events: [...EVENTS.slice(0, 3), errorEvent],
    then,
  });

  const twoEndpoints = (env: Record<string, string> = {}) => primaryAndBackup([], env);

  for (const then of ['done', 'end-without-done'] as const) {
    it(`after commit (${then === 'done' ? 'then [DONE]' : 'then a close'}): continued, the error never relayed`, async () => {
      const { a, b, gw } = await twoEndpoints();
      a.script(failing(then));
      const res = await chat(gw.url, gw.auth, { body: streamBody() });
      const reading = readCompletionStream(res.text);
      expect(reading).toMatchObject({ text: TEXT, done: 1, errors: [], unreadable: [], roleDeltas: 1 });
      expect(res.text).not.toContain('illegal memory access');
      expect(b.requests).toHaveLength(1);
      // A failure of the endpoint, not a success.
      const health = gw.gateway.registry.health.get('a');
      expect(health.consecutiveFailures).toBe(1);
      expect(health.lastError?.message).toContain('illegal memory access');
      expect(gw.logs.some((l) => l.msg === 'broken stream continued' && l.endpoint === 'b')).toBe(true);
    });

    it(`after commit, continuation off (${then}): the error is forwarded once and the stream ends`, async () => {
      const { a, gw } = await twoEndpoints({ CONTINUATION: 'false' });
      a.script(failing(then));
      const res = await chat(gw.url, gw.auth, { body: streamBody() });
      const reading = readCompletionStream(res.text);
      expect(reading.text).toBe(
        readCompletionStream(
          EVENTS.slice(0, 3)
            .map((e) => `data: ${e}\n\n`)
            .join(''),
        ).text,
      );
      expect(reading.errors).toHaveLength(1);
      expect(reading.errors[0]!.message).toContain('illegal memory access');
      expect(reading.done).toBe(0);
      expect(reading.afterEnd).toBe(0);
      expect(gw.gateway.registry.health.get('a').consecutiveFailures).toBe(1);
    });
  }

  it('before commit (the first event is the error): fails over, the client sees only the good answer', async () => {
    const { a, b, gw } = await twoEndpoints();
    a.script({ type: 'sse', events: [errorEvent], then: 'done' });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(readCompletionStream(res.text)).toMatchObject({ text: TEXT, done: 1, errors: [], roleDeltas: 1 });
    expect(res.headers['x-gateway-endpoint']).toBe('b');
    expect(b.requests).toHaveLength(1);
  });

  it('a lone endpoint that keeps failing: one error event, not two', async () => {
    const a = await bed.upstream('a');
    a.defaultBehavior = failing('done');
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    const reading = readCompletionStream(res.text);
    expect(reading.errors).toHaveLength(1);
    expect(reading.done).toBe(0);
    expect(reading.unreadable).toEqual([]);
  });

  it('a JSON answer with status 200 that is an error object fails over like a garbled one', async () => {
    const { a, gw } = await twoEndpoints();
    a.script({ type: 'json', body: { error: { message: 'engine died', type: 'server_error' } } });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(200);
    expect(res.headers['x-gateway-endpoint']).toBe('b');
    expect(res.json.choices[0].message.content).toBe(TEXT);
  });
});

describe('a stream that breaks after the role chunk, before any text', () => {
  for (const [label, env, extra] of [
    ['continuation on', {}, {}],
    ['continuation off', { CONTINUATION: 'false' }, {}],
    [
      'a request with tools (never continued mid-text)',
      {},
      { tools: [{ type: 'function', function: { name: 'f' } }] },
    ],
  ] as const) {
    it(`is sent again, without a second role delta (${label})`, async () => {
      const role = JSON.stringify({ ...(JSON.parse(EVENTS[0]!) as object), id: 'chatcmpl-first' });
      const { a, b, gw } = await primaryAndBackup([{ type: 'sse', events: [role], then: 'reset' }], env);
      const res = await chat(gw.url, gw.auth, { body: streamBody(extra) });
      const reading = readCompletionStream(res.text);
      expect(reading).toMatchObject({ text: TEXT, done: 1, errors: [], roleDeltas: 1, finishReasons: 1 });
      // The request went again as it was: no assistant prefix, no continuation flags.
      expect(b.requests[0]!.body.equals(a.requests[0]!.body)).toBe(true);
      expect(gw.logs.some((l) => l.mode === 'restart' && l.endpoint === 'b')).toBe(true);
      // One stream for the client: the first stream's id throughout.
      const ids = new Set(
        readStrictSse(res.text)
          .events.filter((e) => e !== '[DONE]')
          .map((e) => (JSON.parse(e) as { id: string }).id),
      );
      expect([...ids]).toEqual(['chatcmpl-first']);
    });
  }
});

describe('continuation keeps a bounded transcript', () => {
  const LONG = Array.from({ length: 400 }, (_, i) => `word${i}`).join(' ');
  const longEvents = streamEvents('test-model', LONG);

  async function breakLongStream(env: Record<string, string>) {
    const broken: Behavior = { type: 'sse', events: longEvents.slice(0, 300), then: 'reset' };
    const { b, gw } = await primaryAndBackup([broken], env, LONG);
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    return { b, gw, reading: readCompletionStream(res.text) };
  }

  it('a stream under CONTINUATION_MAX_BYTES is continued', async () => {
    const { reading, gw } = await breakLongStream({ CONTINUATION_MAX_BYTES: '256kb' });
    expect(reading).toMatchObject({ text: LONG, done: 1, errors: [] });
    expect(gw.gateway.completions.transcriptBytes).toBe(0);
  });

  it('past CONTINUATION_MAX_BYTES a break ends the stream with the error event', async () => {
    const { reading, b, gw } = await breakLongStream({ CONTINUATION_MAX_BYTES: '16kb' });
    expect(reading.errors.map((e) => e.code)).toEqual(['upstream_stream_error']);
    expect(reading.done).toBe(0);
    expect(LONG.startsWith(reading.text)).toBe(true);
    expect(b.requests).toHaveLength(0);
    expect(gw.gateway.completions.transcriptBytes).toBe(0);
  });

  it('past CONTINUATION_BUDGET_BYTES (all streams together) likewise', async () => {
    const { reading, b } = await breakLongStream({ CONTINUATION_BUDGET_BYTES: '16kb' });
    expect(reading.errors).toHaveLength(1);
    expect(b.requests).toHaveLength(0);
  });
});

describe('before the first event', () => {
  it("an upstream's comments do not commit the answer: a break after them is retried invisibly", async () => {
    const { b, gw } = await primaryAndBackup([
      { type: 'raw-sse', chunks: [': ping\n\n', ': ping\n\n'], then: 'reset' },
    ]);
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(readCompletionStream(res.text)).toMatchObject({ text: TEXT, done: 1, errors: [], roleDeltas: 1 });
    expect(res.headers['x-gateway-endpoint']).toBe('b');
    expect(res.text).not.toContain(': ping');
    expect(b.requests).toHaveLength(1);
  });

  it('an answer of nothing but [DONE] is an empty answer, retried elsewhere', async () => {
    const { gw } = await primaryAndBackup([{ type: 'raw-sse', chunks: ['data: [DONE]\n\n'] }]);
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(readCompletionStream(res.text)).toMatchObject({ text: TEXT, done: 1, errors: [] });
    expect(res.headers['x-gateway-endpoint']).toBe('b');
  });
});
