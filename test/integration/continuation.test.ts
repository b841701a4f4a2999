import { describe, expect, it } from 'vitest';
import { streamEvents, type Behavior } from '../helpers/fake-upstream.js';
import { chat, sseData, streamBody, streamedText } from '../helpers/http.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();
const TEXT =
  'Akash providers come and go, so the gateway keeps every answer whole: when a stream breaks, another endpoint picks up exactly where the first one stopped, and the reader never notices.';

/** The first `contentEvents` content chunks of the answer (role chunk included), with their own id. */
function brokenAfter(contentEvents: number, then: 'reset' | 'hang' = 'reset'): Behavior {
  const events = streamEvents('test-model', TEXT)
    .slice(0, contentEvents + 1)
    .map((e) => JSON.stringify({ ...(JSON.parse(e) as object), id: 'chatcmpl-original', created: 1111 }));
  return { type: 'sse', events, then };
}

async function setup(
  first: Behavior,
  env: Record<string, string> = {},
  second: Behavior = { type: 'answer', text: TEXT },
) {
  const a = await bed.upstream('a', first);
  const b = await bed.upstream('b', second);
  b.defaultBehavior = { type: 'answer', text: TEXT };
  const gw = await bed.gateway({
    endpoints: [
      { url: a.url, name: 'a', priority: 1 },
      { url: b.url, name: 'b', priority: 2 },
    ],
    env,
  });
  return { a, b, gw };
}

function chunks(text: string): Array<Record<string, any>> {
  return sseData(text)
    .filter((d) => d !== '[DONE]')
    .map((d) => JSON.parse(d) as Record<string, any>);
}

describe('mid-stream continuation', () => {
  it('splices the rest from another endpoint: the client sees one coherent, complete stream', async () => {
    const { b, gw } = await setup(brokenAfter(9));
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe(TEXT);
    const all = chunks(res.text);
    expect(all.filter((c) => c.choices?.[0]?.delta?.role !== undefined)).toHaveLength(1);
    expect(all.filter((c) => c.choices?.[0]?.finish_reason)).toHaveLength(1);
    expect(
      all.every((c) => c.id === 'chatcmpl-original' && c.created === 1111 && c.model === 'test-model'),
    ).toBe(true);
    expect(sseData(res.text).filter((d) => d === '[DONE]')).toHaveLength(1);
    expect(sseData(res.text).at(-1)).toBe('[DONE]');
    expect(res.text).not.toContain('"error"');

    const sent = b.requests[0]!.json!;
    const messages = sent.messages as Array<{ role: string; content: string }>;
    expect(messages.at(-1)!.role).toBe('assistant');
    expect(TEXT.startsWith(messages.at(-1)!.content)).toBe(true);
    expect(messages.at(-1)!.content.length).toBeGreaterThan(20);
    expect(sent).toMatchObject({ continue_final_message: true, add_generation_prompt: false, stream: true });
    expect(gw.logs.some((l) => l.msg === 'broken stream continued' && l.mode === 'continue')).toBe(true);
  });

  it('continues a stream that stalled (idle timeout) too', async () => {
    const { gw } = await setup(brokenAfter(5, 'hang'), { IDLE_TIMEOUT_MS: '150' });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe(TEXT);
  });

  it('keeps repetitive text whole: a continuation that starts like the end of the prefix is not an echo', async () => {
    // Found by the chaos run: lists, tables and code repeat themselves, and dropping a "repeat" at
    // the splice silently removed a whole period of such an answer.
    const periodic = Array.from(
      { length: 6 },
      () => 'one two three four five six seven eight nine ten. ',
    ).join('');
    for (const cut of [11, 20, 31, 40]) {
      const events = streamEvents('test-model', periodic).slice(0, cut);
      const a = await bed.upstream('a', { type: 'sse', events, then: 'reset' });
      const b = await bed.upstream('b');
      b.defaultBehavior = { type: 'answer', text: periodic };
      const gw = await bed.gateway({
        endpoints: [
          { url: a.url, name: 'a', priority: 1 },
          { url: b.url, name: 'b', priority: 2 },
        ],
      });
      const res = await chat(gw.url, gw.auth, { body: streamBody() });
      expect({ cut, text: streamedText(res.text) }).toEqual({ cut, text: periodic });
    }
  });

  it('relays a continuation exactly as the server sends it: no guessing at echoes or restarts', async () => {
    // A server that ignores continue_final_message and starts over cannot be told from an answer that
    // repeats itself; such servers need CONTINUATION=false (see the README).
    const { gw } = await setup(brokenAfter(15), {}, { type: 'answer', text: TEXT, echoChars: 100_000 });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    const prefix = streamEvents('test-model', TEXT)
      .slice(1, 16)
      .map(
        (e) =>
          (JSON.parse(e) as { choices: Array<{ delta: { content: string } }> }).choices[0]!.delta.content,
      )
      .join('');
    expect(streamedText(res.text)).toBe(prefix + TEXT);
  });

  it('sums usage: tokens already streamed count as completion, not prompt', async () => {
    const { gw } = await setup(brokenAfter(10));
    const res = await chat(gw.url, gw.auth, {
      body: streamBody({ stream_options: { include_usage: true } }),
    });
    const usage = chunks(res.text).find((c) => c.usage)?.usage as Record<string, number>;
    expect(usage).toEqual({ prompt_tokens: 40, completion_tokens: 17, total_tokens: 57 });
  });

  it('tries the next endpoint when the first continuation fails, else ends with the error event', async () => {
    const a = await bed.upstream('a', brokenAfter(4));
    const b = await bed.upstream('b', { type: 'status', status: 503 });
    const c = await bed.upstream('c');
    c.defaultBehavior = { type: 'answer', text: TEXT };
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a', priority: 1 },
        { url: b.url, name: 'b', priority: 2 },
        { url: c.url, name: 'c', priority: 3 },
      ],
    });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe(TEXT);

    a.script(brokenAfter(4));
    b.script({ type: 'status', status: 503 });
    c.script({ type: 'status', status: 503 });
    const failed = await chat(gw.url, gw.auth, { body: streamBody() });
    const last = JSON.parse(sseData(failed.text).at(-1)!) as { error: { code: string } };
    expect(last.error.code).toBe('upstream_stream_error');
  });

  it.each([
    ['a request with tools', { tools: [{ type: 'function', function: { name: 'f' } }] }],
    ['n > 1', { n: 2 }],
  ])('never for %s: the stream ends with an error event', async (_what, extra) => {
    const { b, gw } = await setup(brokenAfter(6));
    const res = await chat(gw.url, gw.auth, { body: streamBody(extra) });
    const last = JSON.parse(sseData(res.text).at(-1)!) as { error?: { code: string } };
    expect(last.error?.code).toBe('upstream_stream_error');
    expect(b.requests).toHaveLength(0);
  });

  it('never once the answer switched to tool calls', async () => {
    const toolChunk = JSON.stringify({
      id: 'x',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'test-model',
      choices: [
        {
          index: 0,
          delta: { tool_calls: [{ index: 0, function: { name: 'f', arguments: '{' } }] },
          finish_reason: null,
        },
      ],
    });
    const events = [...streamEvents('test-model', 'thinking ').slice(0, 2), toolChunk];
    const { b, gw } = await setup({ type: 'sse', events, then: 'reset' });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(res.text).toContain('upstream_stream_error');
    expect(b.requests).toHaveLength(0);
  });

  it('CONTINUATION=false turns it off', async () => {
    const { b, gw } = await setup(brokenAfter(6), { CONTINUATION: 'false' });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(res.text).toContain('upstream_stream_error');
    expect(b.requests).toHaveLength(0);
  });
});
