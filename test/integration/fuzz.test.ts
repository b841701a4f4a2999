import fc from 'fast-check';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import type { TestGateway } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

/**
 * Issue 9, part 7: property-based fuzzing of what a client can send (bodies, headers, methods, paths),
 * seeded so that a failure replays. Whatever it is, the answer comes (no hang), is never a 5xx, and an
 * error is OpenAI's error shape with a message.
 */
const bed = useTestBed();
const SEED = 20261205;

const jsonish = fc.jsonValue({ maxDepth: 4 });
const message = fc.oneof(
  fc.record({ role: fc.constantFrom('user', 'system', 'assistant', 'tool'), content: fc.string() }),
  fc.record({ role: fc.string(), content: jsonish }, { requiredKeys: [] }),
  jsonish,
);
/** Mostly plausible requests (so that many reach the upstream), with anything mixed in. */
const chatBody = fc.record(
  {
    model: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('test-model', 'smart') },
      fc.string({ maxLength: 300 }),
      jsonish,
    ),
    messages: fc.oneof({ weight: 6, arbitrary: fc.array(message, { minLength: 1, maxLength: 4 }) }, jsonish),
    stream: fc.oneof({ weight: 4, arbitrary: fc.boolean() }, jsonish),
    n: jsonish,
    tools: jsonish,
    stream_options: jsonish,
    max_tokens: jsonish,
  },
  { requiredKeys: ['model', 'messages'] },
);
/** Nested far deeper than any real request. */
const deep = fc
  .constantFrom(100, 10_000, 30_000)
  .map(
    (n) =>
      `{"model":"test-model","messages":[{"role":"user","content":"x"}],"x":${'['.repeat(n)}${']'.repeat(n)}}`,
  );
const body = fc.oneof(
  { weight: 6, arbitrary: chatBody.map((b) => JSON.stringify(b)) },
  jsonish.map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
  deep,
);

const generousMs = fc.integer({ min: 5_000, max: 3_600_000 }).map(String);
/** Header values Node's client accepts (visible ASCII and spaces). */
const headerValue = fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,40}$/);
const headers = fc.record(
  {
    'content-type': fc.oneof(
      fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded'),
      headerValue,
    ),
    // Mostly absent or identity: a declared encoding the body does not have is a 400.
    'content-encoding': fc.oneof(
      { weight: 6, arbitrary: fc.constant('identity') },
      fc.constantFrom('gzip', 'br', 'deflate'),
      headerValue,
    ),
    authorization: fc.oneof(
      { weight: 12, arbitrary: fc.constant('GOOD') },
      fc.constant('Bearer'),
      headerValue,
      headerValue.map((v) => `Bearer ${v}`),
    ),
    'x-request-id': headerValue,
    // Timeout overrides that are invalid (400) or generous: a tiny one would make a correct 504.
    'x-gateway-first-byte-timeout-ms': fc.oneof(headerValue, { weight: 6, arbitrary: generousMs }),
    'x-gateway-request-timeout-ms': fc.oneof(headerValue, { weight: 6, arbitrary: generousMs }),
    'x-gateway-min-bytes-per-second': fc.oneof(headerValue, { weight: 6, arbitrary: fc.constant('0') }),
    'x-session-id': headerValue,
    'user-agent': headerValue,
  },
  { requiredKeys: ['authorization'] },
);
const junkHeaders = fc.dictionary(fc.stringMatching(/^x-[a-z0-9-]{1,20}$/), headerValue, { maxKeys: 40 });
const target = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ method: 'POST', path: '/v1/chat/completions' }) },
  fc.record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
    path: fc.oneof(
      fc.constantFrom('/v1/models', '/v1/models/test-model', '/health/readiness', '/api/v1/runtime', '/'),
      fc.stringMatching(/^\/[a-zA-Z0-9/_.~%-]{0,80}$/),
    ),
  }),
);

async function send(
  gw: TestGateway,
  agent: Agent,
  input: {
    target: { method: string; path: string };
    body: string | Buffer;
    headers: Record<string, string>;
    junk: Record<string, string>;
  },
): Promise<{ status: number; contentType: string; text: string }> {
  const { target: t, body: b, headers: h, junk } = input;
  const headersOut: Record<string, string> = { ...junk, ...h };
  if (headersOut.authorization === 'GOOD') headersOut.authorization = gw.auth.authorization;
  const hasBody = t.method !== 'GET' && t.method !== 'OPTIONS';
  const res = await request(`${gw.url}${t.path}`, {
    method: t.method as 'POST',
    headers: headersOut,
    body: hasBody ? b : undefined,
    dispatcher: agent,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  return {
    status: res.statusCode,
    contentType: String(res.headers['content-type'] ?? ''),
    text: await res.body.text(),
  };
}

/** A request past every gate (good key, sane headers): what reaches routing and the upstream. */
const plausibleHeaders = fc
  .record(
    {
      'content-type': fc.constantFrom('application/json', 'text/plain'),
      'x-request-id': headerValue,
      'x-session-id': headerValue,
      'user-agent': headerValue,
      traceparent: headerValue,
    },
    { requiredKeys: [] },
  )
  .map((h) => ({ ...h, authorization: 'GOOD' }));
const plausibleBody = fc.oneof(
  { weight: 8, arbitrary: chatBody.map((b) => JSON.stringify(b)) },
  // Extra fields of any shape, long or odd model names, deep nesting, a byte order mark.
  fc
    .tuple(chatBody, fc.dictionary(fc.string({ maxLength: 12 }), jsonish, { maxKeys: 5 }))
    .map(([b, extra]) => JSON.stringify({ ...extra, ...b })),
  fc
    .string({ minLength: 200, maxLength: 2_000 })
    .map((model) => JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }] })),
  deep,
  chatBody.map((b) => `\uFEFF${JSON.stringify(b)}`),
);

/** The answer must have come, not be a 5xx, and be an OpenAI error, a JSON answer or a whole stream. */
function checkAnswer(res: { status: number; contentType: string; text: string }, context: string): void {
  expect(res.status, context).toBeLessThan(500);
  if (res.status >= 400) {
    expect(res.contentType, context).toMatch(/application\/json/);
    const json = JSON.parse(res.text) as { error: Record<string, unknown> };
    expect(Object.keys(json), context).toEqual(['error']);
    expect(Object.keys(json.error).sort(), context).toEqual(['code', 'message', 'param', 'type']);
    expect(json.error.message, context).toEqual(expect.any(String));
    expect(res.text.length, context).toBeLessThan(2_000);
    expect(res.text, context).not.toMatch(/\n\s+at |\.[jt]s:\d+/);
  } else if (res.contentType.includes('text/event-stream')) {
    expect(res.text, context).toMatch(/data: \[DONE\]\n\n$/);
  } else if (res.status !== 204) {
    expect(() => JSON.parse(res.text) as unknown, context).not.toThrow();
  }
}

describe('fuzzing requests (seeded)', () => {
  it('any body, headers, method and path: an answer, never a 5xx, errors in OpenAI shape', async () => {
    const a = await bed.upstream('a');
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }], env: { LOG_LEVEL: 'silent' } });
    // An alias: its requests are written again (model rewritten), unlike the others.
    gw.gateway.reload({ ...gw.gateway.config.current, aliases: { smart: ['test-model'] } });
    const statuses = new Map<number, number>();

    const agent = new Agent();
    bed.onCleanup(() => agent.destroy());
    let requests = 0;
    await fc.assert(
      fc.asyncProperty(target, body, headers, junkHeaders, async (t, b, h, junk) => {
        requests++;
        const res = await send(gw, agent, { target: t, body: b, headers: h, junk });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        checkAnswer(res, JSON.stringify({ t, h, status: res.status, text: res.text.slice(0, 300) }));
      }),
      { seed: SEED, numRuns: 400, endOnFailure: true },
    );
    expect(requests).toBe(400);
    // The run reached the upstream, not only the gates in front of it.
    expect(statuses.get(200) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(20);
    expect(a.requests.length).toBeGreaterThan(20);

    // Requests that get past the gates: they reach routing, aliases and the upstream.
    const chat = { method: 'POST', path: '/v1/chat/completions' };
    const before = a.requests.length;
    await fc.assert(
      fc.asyncProperty(plausibleBody, plausibleHeaders, async (b, h) => {
        const res = await send(gw, agent, { target: chat, body: b, headers: h, junk: {} });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        checkAnswer(
          res,
          JSON.stringify({ body: String(b).slice(0, 300), status: res.status, text: res.text.slice(0, 300) }),
        );
      }),
      { seed: SEED + 1, numRuns: 400, endOnFailure: true },
    );
    expect(a.requests.length - before).toBeGreaterThan(150);
    // And the gateway is still fine.
    const health = await request(`${gw.url}/health/readiness`, { dispatcher: agent });
    expect(health.statusCode).toBe(200);
    await health.body.dump();
  }, 60_000);
});
