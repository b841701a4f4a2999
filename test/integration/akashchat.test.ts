import { describe, expect, it } from 'vitest';
import { streamEvents, type Behavior, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

/**
 * What the AkashChat frontend does (AKASHCHAT.md), reproduced at the HTTP level: `@ai-sdk/openai` 1.3 in
 * `compatible` mode needs zod 3 and cannot be installed here, so these tests send the requests it sends
 * (global fetch, the same headers and body fields) and parse the answer the way it does.
 */

const bed = useTestBed();

async function setup(
  env: Record<string, string> = {},
): Promise<{ upstream: FakeUpstream; apiEndpoint: string }> {
  const upstream = await bed.upstream({ name: 'gpu-a', models: ['Meta-Llama-3-1-8B-Instruct-FP8'] });
  const gw = await bed.gateway({
    endpoints: [{ url: upstream.url, name: 'gpu-a', apiKey: 'sk-upstream-a' }],
    env,
  });
  // AkashChat's API_ENDPOINT includes /v1.
  return { upstream, apiEndpoint: `${gw.url}/v1` };
}

const MODEL = 'Meta-Llama-3-1-8B-Instruct-FP8';

/** The headers the AI SDK's postJsonToApi sends. */
const aiSdkHeaders = () => ({ 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` });

/** The body of AkashChat's streaming call: no max_tokens, no stream_options. */
function chatBody(extraUserMessages: string[] = [], stream = true) {
  return {
    model: MODEL,
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Summarise the attached file.' },
      ...extraUserMessages.map((content) => ({ role: 'user', content })),
    ],
    temperature: 0.7,
    top_p: 0.95,
    stream,
  };
}

interface SseEvent {
  data: string;
}

/**
 * Parses an event stream the way eventsource-parser (used by the AI SDK) does: lines end with CRLF, LF
 * or CR; a blank line dispatches the event; lines starting with `:` are comments; `data:` lines are
 * joined with newlines. Returns events and comments in arrival order.
 */
function parseEventStream(
  text: string,
): Array<{ kind: 'event'; event: SseEvent } | { kind: 'comment'; text: string }> {
  const out: Array<{ kind: 'event'; event: SseEvent } | { kind: 'comment'; text: string }> = [];
  let data: string[] = [];
  for (const line of text.split(/\r\n|\n|\r/)) {
    if (line === '') {
      if (data.length > 0) out.push({ kind: 'event', event: { data: data.join('\n') } });
      data = [];
    } else if (line.startsWith(':')) {
      out.push({ kind: 'comment', text: line });
    } else {
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
    }
  }
  return out;
}

interface StreamResult {
  text: string;
  error: { message: string } | undefined;
  sawDone: boolean;
  chunks: unknown[];
}

/** What the AI SDK makes of a stream: text deltas, skipped [DONE], an `{error}` chunk as a stream error. */
function readAsAiSdk(body: string): StreamResult {
  const result: StreamResult = { text: '', error: undefined, sawDone: false, chunks: [] };
  for (const item of parseEventStream(body)) {
    if (item.kind !== 'event') continue;
    if (item.event.data === '[DONE]') {
      result.sawDone = true;
      continue;
    }
    const chunk = JSON.parse(item.event.data) as {
      error?: { message: string };
      choices?: Array<{ delta?: { content?: string | null } }>;
    };
    result.chunks.push(chunk);
    if (chunk.error) {
      result.error = chunk.error;
      continue;
    }
    result.text += chunk.choices?.[0]?.delta?.content ?? '';
  }
  return result;
}

async function streamChat(apiEndpoint: string, body: unknown) {
  const res = await fetch(`${apiEndpoint}/chat/completions`, {
    method: 'POST',
    headers: aiSdkHeaders(),
    body: JSON.stringify(body),
  });
  return { res, raw: await res.text() };
}

describe('AkashChat frontend compatibility', () => {
  it('GET /models with the bearer key serves data[].id and owned_by proxy, created in seconds', async () => {
    const { apiEndpoint } = await setup();
    const res = await fetch(`${apiEndpoint}/models`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
    expect(res.ok).toBe(true);
    const json = (await res.json()) as {
      object: string;
      data: Array<{ id: string; object: string; created: number; owned_by: string }>;
    };
    expect(json.object).toBe('list');
    expect(json.data.map((m) => m.id)).toEqual([MODEL]);
    for (const m of json.data) {
      expect(m.object).toBe('model');
      expect(m.owned_by).toBe('proxy');
      expect(Number.isInteger(m.created)).toBe(true);
      expect(m.created).toBeLessThan(Date.now() / 1000 + 60);
    }
  });

  it('streams a chat with a ~3 MB file message, forwarding the body untouched', async () => {
    const { apiEndpoint, upstream } = await setup();
    const text = 'The file describes a GPU lease on Akash.';
    upstream.script({ type: 'sse', text, delayMs: 2 });
    const file = `file.txt:\n${'0123456789abcdef\n'.repeat(185_000)}`;
    expect(file.length).toBeGreaterThan(3_000_000);
    const body = chatBody([file]);
    const { res, raw } = await streamChat(apiEndpoint, body);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const parsed = readAsAiSdk(raw);
    expect(parsed.error).toBeUndefined();
    expect(parsed.text).toBe(text);
    expect(parsed.sawDone).toBe(true);

    // Forwarded as it came, but for the usage the gateway asks for its ledger (spliced in, not
    // re-serialised; the usage chunk is taken out of what the app receives).
    const received = upstream.requests[0]!;
    const sent = JSON.stringify(body);
    expect(received.body.toString()).toBe(`{"stream_options":{"include_usage":true},${sent.slice(1)}`);
    expect(received.json).not.toHaveProperty('max_tokens');
    expect(parsed.text).toBe(text);
    expect(received.headers.authorization).toBe('Bearer sk-upstream-a');
  });

  it('a non-streaming call with one function tool returns choices[0].message.tool_calls', async () => {
    const { apiEndpoint, upstream } = await setup();
    const toolCalls = [
      {
        id: 'call_1',
        type: 'function',
        function: { name: 'web_search', arguments: '{"query":"akash gpu"}' },
      },
    ];
    upstream.script({
      type: 'json',
      body: {
        id: 'chatcmpl-t',
        object: 'chat.completion',
        created: 1700000000,
        model: MODEL,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: '', tool_calls: toolCalls },
            finish_reason: 'tool_calls',
          },
        ],
        usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
      },
    });
    const tools = [
      {
        type: 'function',
        function: {
          name: 'web_search',
          description: 'Search the web',
          parameters: {
            type: 'object',
            properties: { query: { type: 'string' } },
            required: ['query'],
            additionalProperties: false,
            $schema: 'http://json-schema.org/draft-07/schema#',
          },
        },
      },
    ];
    const body = { ...chatBody([], false), tools };
    delete (body as { stream?: boolean }).stream;
    const res = await fetch(`${apiEndpoint}/chat/completions`, {
      method: 'POST',
      headers: aiSdkHeaders(),
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    const json = (await res.json()) as { choices: Array<{ message: { tool_calls: unknown } }> };
    expect(json.choices[0]!.message.tool_calls).toEqual(toolCalls);
    expect(upstream.requests[0]!.body.toString('utf8')).toBe(JSON.stringify(body));
  });

  it('GET /health/readiness (root, bearer key sent) is ok', async () => {
    const { apiEndpoint } = await setup();
    const base = apiEndpoint.replace(/\/v1$/, '');
    const res = await fetch(`${base}/health/readiness`, {
      headers: { authorization: `Bearer ${CLIENT_KEY}` },
    });
    expect(res.ok).toBe(true);
    const live = await fetch(`${base}/health/liveliness`);
    expect(live.ok).toBe(true);
  });

  const failures: Array<[string, Behavior]> = [
    [
      'a reset',
      {
        type: 'sse',
        events: streamEvents(MODEL, 'Partial answer that').slice(0, 3),
        delayMs: 2,
        then: 'reset',
      },
    ],
    [
      'a close without [DONE]',
      {
        type: 'sse',
        events: streamEvents(MODEL, 'Partial answer that').slice(0, 3),
        delayMs: 2,
        then: 'end-without-done',
      },
    ],
  ];
  for (const [label, behavior] of failures) {
    it(`a stream failure after the first byte (${label}) ends with an {error} chunk and no [DONE]`, async () => {
      // The lone endpoint fails the continuation too (continuation is tried on it when it is alone).
      const { apiEndpoint, upstream } = await setup();
      upstream.script(behavior, { type: 'status', status: 503 }, { type: 'status', status: 503 });
      const { res, raw } = await streamChat(apiEndpoint, chatBody());
      expect(res.status).toBe(200);
      const parsed = readAsAiSdk(raw);
      expect(parsed.text.startsWith('Partial ')).toBe(true);
      expect(parsed.error).toBeDefined();
      expect(typeof parsed.error!.message).toBe('string');
      expect(parsed.error!.message.trim().length).toBeGreaterThan(10);
      expect(parsed.chunks.at(-1)).toHaveProperty('error');
      expect(parsed.sawDone).toBe(false);
      expect(raw).not.toContain('[DONE]');
    });
  }

  it('sends `: keep-alive` comments while waiting for the first token, then the intact text', async () => {
    const { apiEndpoint, upstream } = await setup({ HEARTBEAT_INTERVAL_MS: '50' });
    const text = 'Worth the wait.';
    upstream.script({ type: 'sse', text, firstDelayMs: 300 });
    const { res, raw } = await streamChat(apiEndpoint, chatBody());
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const items = parseEventStream(raw);
    const firstEvent = items.findIndex((i) => i.kind === 'event');
    const heartbeats = items
      .slice(0, firstEvent)
      .filter((i) => i.kind === 'comment' && i.text === ': keep-alive');
    expect(firstEvent).toBeGreaterThan(0);
    expect(heartbeats.length).toBeGreaterThanOrEqual(1);
    const parsed = readAsAiSdk(raw);
    expect(parsed.error).toBeUndefined();
    expect(parsed.text).toBe(text);
    expect(parsed.sawDone).toBe(true);
  });

  it('permanent errors are 4xx with {error:{message}}: unknown model 404, bad body 400', async () => {
    const { apiEndpoint, upstream } = await setup();
    const unknown = await fetch(`${apiEndpoint}/chat/completions`, {
      method: 'POST',
      headers: aiSdkHeaders(),
      body: JSON.stringify({ ...chatBody(), model: 'no-such-model' }),
    });
    expect(unknown.status).toBe(404);
    const unknownBody = (await unknown.json()) as { error: { message: string } };
    expect(unknownBody.error.message).toContain('no-such-model');

    for (const bad of ['{"model":', JSON.stringify({ model: MODEL, stream: true })]) {
      const res = await fetch(`${apiEndpoint}/chat/completions`, {
        method: 'POST',
        headers: aiSdkHeaders(),
        body: bad,
      });
      expect(res.status).toBe(400);
      const json = (await res.json()) as { error: { message: string; type: string } };
      expect(json.error.message.length).toBeGreaterThan(0);
      expect(json.error.type).toBe('invalid_request_error');
    }
    expect(upstream.requests).toHaveLength(0);
  });
});
