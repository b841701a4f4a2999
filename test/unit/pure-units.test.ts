import { describe, expect, it } from 'vitest';
import type { Timeouts } from '../../src/config/types.js';
import { exhaustedError, type FailedAttempt } from '../../src/services/completion/exhausted-error.js';
import type { AttemptFailure } from '../../src/services/core/outcomes.js';
import { tighten } from '../../src/services/core/timeouts.js';
import { forwardableHeaders } from '../../src/services/forwarder/forward-headers.js';
import { parseUpstreamError, upstreamRequestError } from '../../src/services/forwarder/upstream-error.js';

describe('parseUpstreamError: the message of any error body shape', () => {
  it.each([
    [
      'OpenAI',
      '{"error":{"message":"context too long","type":"invalid_request_error","code":"ctx","param":"messages"}}',
      { message: 'context too long', type: 'invalid_request_error', code: 'ctx', param: 'messages' },
    ],
    [
      "vLLM's older",
      '{"object":"error","message":"bad model","type":"NotFoundError","code":404}',
      { message: 'bad model', type: 'NotFoundError' },
    ],
    ['FastAPI', '{"detail":"Not authenticated"}', { message: 'Not authenticated' }],
    [
      'FastAPI validation',
      '{"detail":[{"loc":["body"],"msg":"field required"}]}',
      { message: '[{"loc":["body"],"msg":"field required"}]' },
    ],
    ['a bare string error', '{"error":"overloaded"}', { message: 'overloaded' }],
    ['plain text', 'upstream connect error', { message: 'upstream connect error' }],
    [
      'an HTML page',
      '<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>',
      { message: '502 Bad Gateway (HTML error page)' },
    ],
    ['empty', '', { message: 'The upstream model server answered HTTP 500.' }],
    ['JSON without a message', '{"foo":1}', { message: 'The upstream model server answered HTTP 500.' }],
  ])('%s', (_name, body, expected) => {
    expect(parseUpstreamError(500, body)).toMatchObject(expected);
  });

  it('cuts a long message, and keeps only a plain type name for the client', () => {
    expect(parseUpstreamError(400, 'x'.repeat(2_000)).message).toHaveLength(501);
    const err = upstreamRequestError(422, '{"error":{"message":"bad","type":"<script>"}}');
    expect(err.status).toBe(422);
    expect(err.type).toBe('invalid_request_error');
    expect(err.code).toBe('upstream_rejected_request');
  });
});

describe('exhaustedError: the status matrix of an exhausted pool', () => {
  const http = (status: number, retryAfterMs?: number): AttemptFailure => ({
    kind: 'http',
    status,
    retryAfterMs,
    message: `HTTP ${status}`,
    body: '',
  });
  const connect: AttemptFailure = { kind: 'connect', code: 'ECONNREFUSED', message: 'connection refused' };
  const timeout: AttemptFailure = { kind: 'timeout', phase: 'first-byte', message: 'slow' };
  const garbage: AttemptFailure = { kind: 'bad-response', message: 'not JSON' };
  const errorEvent: AttemptFailure = { kind: 'error-event', message: 'CUDA error' };
  const on = (...failures: AttemptFailure[]): FailedAttempt[] =>
    failures.map((failure, i) => ({ endpoint: `e${i}`, failure }));

  it.each([
    ['every endpoint 404', on(http(404), http(404)), 404, 'model_not_found'],
    ['503 and 429', on(http(503), http(429)), 503, 'no_endpoint_available'],
    ['504 and 408', on(http(504), http(408)), 503, 'no_endpoint_available'],
    ['refused connections', on(connect, connect), 503, 'no_endpoint_available'],
    ['nothing tried', on(), 503, 'no_endpoint_available'],
    ['500 among 503s', on(http(503), http(500), http(503)), 502, 'upstream_error'],
    ['a 502', on(http(502)), 502, 'upstream_error'],
    ['a bad key', on(http(401)), 502, 'upstream_auth_error'],
    ['a redirect', on(http(301)), 502, 'upstream_redirect'],
    ['garbage', on(http(503), garbage), 502, 'upstream_invalid_response'],
    ['an error event', on(errorEvent), 502, 'upstream_error'],
    ['all timed out', on(timeout, timeout), 504, 'first_byte_timeout'],
    ['timeouts and refusals', on(timeout, connect), 503, 'no_endpoint_available'],
  ] as const)('%s: %i %s', (_name, failures, status, code) => {
    const error = exhaustedError('m', failures, undefined);
    expect({ status: error.status, code: error.code }).toEqual({ status, code });
  });

  it("a 503's Retry-After is the upstreams' shortest, else the soonest recovery, at least 1 s", () => {
    expect(exhaustedError('m', on(http(503, 7_000), http(429, 2_500)), 60_000).retryAfterSeconds).toBe(3);
    expect(exhaustedError('m', on(connect), 12_000).retryAfterSeconds).toBe(12);
    expect(exhaustedError('m', on(connect), 10).retryAfterSeconds).toBe(1);
  });
});

describe('forwardableHeaders', () => {
  it("the gateway's headers first, then the allowed client headers; never credentials or hop-by-hop", () => {
    const out = forwardableHeaders(
      {
        authorization: 'Bearer client',
        cookie: 'c',
        connection: 'keep-alive, x-hop',
        'x-hop': '1',
        'user-agent': 'ua',
        'x-custom': 'c',
        'x-trace-id': 't',
        'content-type': 'text/plain',
      },
      'req-1',
      ['x-trace-id', 'x-hop', 'x-cus*'],
    );
    expect(out).toEqual({
      'content-type': 'application/json',
      'accept-encoding': 'identity',
      'x-request-id': 'req-1',
      'user-agent': 'ua',
      'x-trace-id': 't',
      'x-custom': 'c',
    });
    expect(Object.keys(out).slice(0, 3)).toEqual(['content-type', 'accept-encoding', 'x-request-id']);
  });

  it('caps the count and the size of what it forwards', () => {
    const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`x-m-${i}`, 'v']));
    const out = forwardableHeaders(many, 'r', ['x-m-*']);
    expect(Object.keys(out).filter((k) => k.startsWith('x-m-'))).toHaveLength(32);
    const big = forwardableHeaders({ 'user-agent': 'u'.repeat(4_097), accept: 'a'.repeat(4_096) }, 'r');
    expect(big['user-agent']).toBeUndefined();
    expect(big.accept).toHaveLength(4_096);
  });
});

describe('tighten: request timeout headers only make limits stricter', () => {
  const base: Timeouts = {
    connectMs: 5_000,
    firstByteMs: 120_000,
    idleMs: 60_000,
    totalMs: 600_000,
    minBytesPerSecond: 100,
    throughputWindowMs: 10_000,
  };

  it('takes the stricter value of each, and never loosens', () => {
    expect(tighten(base, { firstByteMs: 1_000, idleMs: 90_000, minBytesPerSecond: 50 })).toEqual({
      ...base,
      firstByteMs: 1_000,
    });
    expect(tighten(base, { totalMs: 30_000, minBytesPerSecond: 500 })).toEqual({
      ...base,
      totalMs: 30_000,
      minBytesPerSecond: 500,
    });
  });

  it('without overrides returns the same object (no allocation per request)', () => {
    expect(tighten(base, {})).toBe(base);
  });
});

describe('deeperThan (the depth bound of bodies written again)', () => {
  it('counts object and array levels, without recursing', async () => {
    const { deeperThan } = await import('../../src/services/core/request-body.js');
    expect(deeperThan({ a: [1, { b: 2 }] }, 3)).toBe(false);
    expect(deeperThan({ a: [1, { b: [] }] }, 3)).toBe(true);
    expect(deeperThan('text', 0)).toBe(false);
    expect(deeperThan(JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`), 1_000)).toBe(true);
  });
});

describe('ModelRename (modelNames: answers carry the public id)', () => {
  it('renames the model of every event, compact or spaced, and nothing else', async () => {
    const { ModelRename } = await import('../../src/services/streaming/model-rename.js');
    const rename = new ModelRename('llama3.1:8b', 'llama-3.1-8b');
    const events = Buffer.from(
      'data: {"id":"x","model":"llama3.1:8b","choices":[{"delta":{"content":"say \\"model\\":\\"llama3.1:8b\\""}}]}\n\n' +
        'data: {"id":"x", "model": "llama3.1:8b", "choices":[]}\n\n',
    );
    expect(rename.events(events).toString()).toBe(
      'data: {"id":"x","model":"llama-3.1-8b","choices":[{"delta":{"content":"say \\"model\\":\\"llama3.1:8b\\""}}]}\n\n' +
        'data: {"id":"x", "model": "llama-3.1-8b", "choices":[]}\n\n',
    );
    const untouched = Buffer.from('data: {"model":"other"}\n\n');
    expect(rename.events(untouched)).toBe(untouched);
    expect(rename.answer({ model: 'llama3.1:8b', choices: [] })).toEqual({
      body: Buffer.from('{"model":"llama-3.1-8b","choices":[]}'),
      parsed: { model: 'llama-3.1-8b', choices: [] },
    });
    expect(rename.answer({ model: 'other' })).toBeUndefined();
  });

  it('publicIds and upstreamModelId map both ways', async () => {
    const { publicIds, upstreamModelId } = await import('../../src/services/endpoints/registry.js');
    const config = { modelNames: { 'llama-3.1-8b': 'llama3.1:8b', same: 'same' } } as never;
    expect(publicIds(config, ['llama3.1:8b', 'qwen', 'llama-3.1-8b'])).toEqual(['llama-3.1-8b', 'qwen']);
    expect(upstreamModelId(config, 'llama-3.1-8b')).toBe('llama3.1:8b');
    expect(upstreamModelId(config, 'same')).toBeUndefined();
    expect(upstreamModelId(config, 'qwen')).toBeUndefined();
  });
});

describe('FieldReader: the Redis admission answer read in place', () => {
  it('reads integers, negatives, fractions, exponents and empty fields as Number() would', async () => {
    const { FieldReader, SEPARATOR } = await import('../../src/stores/counters/redis-scripts.js');
    const fields = [
      '1',
      '0',
      '-1',
      '60100',
      '0.4',
      '1e+11',
      '',
      '-',
      '12345678901234567',
      '9007199254740993',
    ];
    const reader = new FieldReader(fields.join(SEPARATOR));
    for (const f of fields) expect(reader.next(), f).toBe(Number(f));
    // Past the end: nothing more to read.
    expect(reader.next()).toBeNaN();
  });
});
