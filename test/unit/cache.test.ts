import { describe, expect, it } from 'vitest';
import { configOrigin, loadConfig, type ConfigError } from '../../src/config/load-config.js';
import { cacheKey, canonical, scopeOf } from '../../src/services/cache/cache-key.js';
import {
  answerOf,
  dataEvents,
  decodeAnswer,
  encodeAnswer,
  replay,
} from '../../src/services/cache/cached-answer.js';
import { cacheUseOf } from '../../src/services/cache/response-cache.js';
import { ANONYMOUS, type Principal } from '../../src/services/core/principal.js';
import { ENTRY_OVERHEAD_BYTES, MemoryCache } from '../../src/stores/cache/memory-cache.js';

const sse = (...payloads: unknown[]) =>
  payloads.map((p) => `data: ${typeof p === 'string' ? p : JSON.stringify(p)}\n\n`).join('');
const head = { id: 'c1', object: 'chat.completion.chunk', created: 7, model: 'm' };

describe('cache key', () => {
  it('is the same whatever the order of keys, and ignores stream, stream_options, user and x-gateway', () => {
    const a = cacheKey({ model: 'm', messages: [{ role: 'user', content: 'x' }], temperature: 0 }, 'key:k');
    const b = cacheKey(
      {
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
        user: 'someone',
        'x-gateway': { cache: true },
        messages: [{ content: 'x', role: 'user' }],
        model: 'm',
      },
      'key:k',
    );
    expect(b).toBe(a);
    expect(cacheKey({ model: 'm', messages: [] }, 'key:other')).not.toBe(
      cacheKey({ model: 'm', messages: [] }, 'key:k'),
    );
    // `user` is ignored only at the top: inside a message it is content.
    expect(canonical({ messages: [{ user: 1 }] }, new Set(['user']))).toBe('{"messages":[{"user":1}]}');
    // Array order is meaning.
    expect(canonical([2, 1])).toBe('[2,1]');
  });

  it('scopes: the key; the team (a key without one is its own); everyone', () => {
    const p: Principal = { ...ANONYMOUS, kind: 'virtual', keyId: 'k1', team: 'research' };
    expect(scopeOf('key', p)).toBe('key:k1');
    expect(scopeOf('team', p)).toBe('team:research');
    expect(scopeOf('team', { ...p, team: null })).toBe('key:k1');
    expect(scopeOf('global', p)).toBe('global');
  });
});

describe('Cache-Control and x-gateway.cache', () => {
  it.each([
    [undefined, undefined, 'use'],
    ['max-age=0', undefined, 'use'],
    ['no-cache', undefined, 'refresh'],
    ['No-Cache, max-age=0', undefined, 'refresh'],
    ['no-store', undefined, 'bypass'],
    ['no-cache, no-store', undefined, 'bypass'],
    [undefined, false, 'bypass'],
    [undefined, true, 'use'],
    ['no-cache', false, 'bypass'],
  ] as const)('%s with cache %s: %s', (header, flag, expected) => {
    expect(cacheUseOf(header, flag)).toBe(expected);
  });
});

describe('cached answers', () => {
  it('a stream is kept without its usage-only chunk, heartbeats and [DONE]; the usage goes with it', () => {
    const received = Buffer.from(
      ': keep-alive\n\n' +
        sse(
          {
            ...head,
            choices: [{ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }],
          },
          { ...head, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
          { ...head, choices: [], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } },
          '[DONE]',
        ),
    );
    const answer = answerOf('sse', received, undefined)!;
    expect(answer.usage).toEqual({ prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 });
    expect(dataEvents(answer.body.toString())).toHaveLength(2);
    const back = decodeAnswer(encodeAnswer(answer))!;
    expect(back).toEqual(answer);
    // Replayed without usage unless asked, with it at the end when asked.
    const plain = replay(back, true, false).body.toString();
    expect(plain.endsWith('"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')).toBe(true);
    const withUsage = dataEvents(replay(back, true, true).body.toString());
    expect(JSON.parse(withUsage.at(-2)!)).toEqual({
      ...head,
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
    });
    expect(withUsage.at(-1)).toBe('[DONE]');
  });

  it('incomplete or failed answers are not kept', () => {
    const start = { ...head, choices: [{ index: 0, delta: { content: 'a' }, finish_reason: null }] };
    const finish = { ...head, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] };
    expect(answerOf('sse', Buffer.from(sse(start, finish)), undefined)).toBeUndefined(); // no [DONE]
    expect(answerOf('sse', Buffer.from(sse(start, '[DONE]')), undefined)).toBeUndefined(); // no finish
    expect(answerOf('sse', Buffer.from(sse(start, { error: { message: 'x' } })), undefined)).toBeUndefined();
    expect(answerOf('sse', Buffer.from(sse(start, 'not json', finish, '[DONE]')), undefined)).toBeUndefined();
    expect(answerOf('json', Buffer.from('{"error":{"message":"x"}}'), undefined)).toBeUndefined();
    expect(answerOf('json', Buffer.from('{"choices":[]}'), undefined)).toBeUndefined();
    expect(answerOf('json', Buffer.from('<html>'), undefined)).toBeUndefined();
    expect(decodeAnswer(Buffer.from('{"v":99,"mode":"json"}\n{}'))).toBeUndefined();
    expect(decodeAnswer(Buffer.from('garbage'))).toBeUndefined();
  });

  it('a stream with several choices, tool calls and reasoning is put together as one completion', () => {
    const chunk = (choices: unknown[]) => ({ ...head, system_fingerprint: 'fp', choices });
    const received = Buffer.from(
      sse(
        chunk([
          { index: 0, delta: { role: 'assistant', reasoning_content: 'Let me ' }, finish_reason: null },
        ]),
        chunk([{ index: 0, delta: { reasoning_content: 'think.' }, finish_reason: null }]),
        chunk([
          {
            index: 0,
            delta: {
              tool_calls: [
                { index: 0, id: 'call_1', type: 'function', function: { name: 'get_', arguments: '{"ci' } },
              ],
            },
            finish_reason: null,
          },
        ]),
        chunk([
          {
            index: 0,
            delta: { tool_calls: [{ index: 0, function: { name: 'weather', arguments: 'ty":"Oslo"}' } }] },
            finish_reason: null,
          },
        ]),
        chunk([{ index: 1, delta: { role: 'assistant', content: 'Second ' }, finish_reason: null }]),
        chunk([{ index: 1, delta: { content: 'choice.' }, finish_reason: 'stop' }]),
        chunk([{ index: 0, delta: {}, finish_reason: 'tool_calls' }]),
        '[DONE]',
      ),
    );
    const answer = answerOf('sse', received, { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 })!;
    const completion = JSON.parse(replay(answer, false, false).body.toString()) as unknown;
    expect(completion).toEqual({
      id: 'c1',
      object: 'chat.completion',
      created: 7,
      model: 'm',
      system_fingerprint: 'fp',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: null,
            reasoning_content: 'Let me think.',
            tool_calls: [
              {
                id: 'call_1',
                type: 'function',
                function: { name: 'get_weather', arguments: '{"city":"Oslo"}' },
              },
            ],
          },
          finish_reason: 'tool_calls',
        },
        { index: 1, message: { role: 'assistant', content: 'Second choice.' }, finish_reason: 'stop' },
      ],
      usage: { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 },
    });
  });

  it('a JSON completion replayed as a stream: content chunk, finish chunk, usage when asked, [DONE]', () => {
    const completion = {
      id: 'c2',
      object: 'chat.completion',
      created: 8,
      model: 'm',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '{}' } }],
          },
          finish_reason: 'tool_calls',
        },
      ],
      usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
    };
    const answer = answerOf('json', Buffer.from(JSON.stringify(completion)), undefined)!;
    expect(replay(answer, false, false).body).toEqual(Buffer.from(JSON.stringify(completion)));
    const events = dataEvents(replay(answer, true, true).body.toString());
    expect(events.map((e) => (e === '[DONE]' ? e : JSON.parse(e)))).toEqual([
      {
        id: 'c2',
        object: 'chat.completion.chunk',
        created: 8,
        model: 'm',
        choices: [
          {
            index: 0,
            delta: {
              role: 'assistant',
              content: null,
              tool_calls: [{ index: 0, id: 't', type: 'function', function: { name: 'f', arguments: '{}' } }],
            },
            finish_reason: null,
          },
        ],
      },
      {
        id: 'c2',
        object: 'chat.completion.chunk',
        created: 8,
        model: 'm',
        choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }],
      },
      {
        id: 'c2',
        object: 'chat.completion.chunk',
        created: 8,
        model: 'm',
        choices: [],
        usage: completion.usage,
      },
      '[DONE]',
    ]);
    expect(dataEvents(replay(answer, true, false).body.toString())).toHaveLength(3);
  });
});

describe('memory cache store', () => {
  it('is bounded by bytes, drops the least recently used first, and refuses an entry over an eighth', async () => {
    const cache = new MemoryCache({ maxBytes: 20_000 });
    const value = Buffer.alloc(700);
    for (let i = 0; i < 8; i++) await cache.set(`k${i}`, value, 60_000);
    // 8 × (700 + 2 + ENTRY_OVERHEAD_BYTES) = 17 904 bytes: all fit.
    expect(cache.stats()).toEqual({ entries: 8, bytes: 8 * (702 + ENTRY_OVERHEAD_BYTES) });
    await cache.get('k0'); // used: k1 is now the least recently used
    await cache.set('k8', value, 60_000);
    expect(await cache.get('k1')).toBeUndefined();
    expect(await cache.get('k0')).toBeDefined();
    expect(cache.stats().bytes).toBeLessThanOrEqual(20_000);
    // One entry may take an eighth of the bound (2500 bytes), its bookkeeping included.
    await cache.set('huge', Buffer.alloc(2_500 - ENTRY_OVERHEAD_BYTES - 3), 60_000);
    expect(await cache.get('huge')).toBeUndefined();
    await cache.set('fits', Buffer.alloc(2_500 - ENTRY_OVERHEAD_BYTES - 4), 60_000);
    expect(await cache.get('fits')).toBeDefined();
    expect(await cache.clear()).toBe(8);
    expect(cache.stats()).toEqual({ entries: 0, bytes: 0 });
  });

  it('expires entries by the clock it is given; expired ones are not counted when cleared', async () => {
    let now = 1_000;
    const cache = new MemoryCache({ maxBytes: 1_000_000, now: () => now });
    await cache.set('a', Buffer.from('x'), 1_000);
    await cache.set('b', Buffer.from('y'), 5_000);
    now += 999;
    expect(await cache.get('a')).toEqual(Buffer.from('x'));
    now += 2;
    expect(await cache.get('a')).toBeUndefined();
    await cache.set('c', Buffer.from('z'), 1_000);
    now += 1_500;
    expect(await cache.clear()).toBe(1);
  });
});

describe('cache settings', () => {
  const base = {
    API_KEY: 'sk-test-key-0123456789',
    ENDPOINTS: '[{"url":"http://127.0.0.1:9"}]',
    HOST: '127.0.0.1',
  };

  it('CACHE, CACHE_TTL, CACHE_MAX_BYTES and CACHE_SCOPE', () => {
    const config = loadConfig({
      env: { ...base, CACHE: 'memory', CACHE_TTL: '300s', CACHE_MAX_BYTES: '64mb', CACHE_SCOPE: 'team' },
    });
    expect(config.cache).toEqual({ mode: 'memory', ttl: 300_000, maxBytes: 64 * 1024 * 1024, scope: 'team' });
    expect(loadConfig({ env: base }).cache).toEqual({
      mode: 'off',
      ttl: 3_600_000,
      maxBytes: 512 * 1024 * 1024,
      scope: 'key',
    });
  });

  it('CACHE=redis without REDIS_URL, and values that are no setting, are refused with the name', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig({ env: { ...base, ...env } });
        return [];
      } catch (err) {
        return (err as ConfigError).problems;
      }
    };
    expect(problems({ CACHE: 'redis' }).join('\n')).toContain('REDIS_URL');
    expect(problems({ CACHE: 'disk' }).join('\n')).toMatch(/CACHE.*'off', 'memory' or 'redis'/);
    expect(problems({ CACHE: 'memory', CACHE_TTL: 'soon' }).join('\n')).toContain('CACHE_TTL');
    expect(problems({ CACHE: 'memory', CACHE_SCOPE: 'user' }).join('\n')).toContain('CACHE_SCOPE');
  });

  it('CACHE=memory with several workers is a warning: each worker has its own', () => {
    const config = loadConfig({ env: { ...base, CACHE: 'memory', WORKERS: '2' } });
    expect(configOrigin(config)?.warnings.join('\n')).toContain('CACHE=memory with WORKERS=2');
  });
});
