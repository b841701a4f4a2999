import { describe, expect, it } from 'vitest';
import { describeConfig } from '../../src/config/describe-config.js';
import { ConfigError, loadConfig } from '../../src/config/load-config.js';
import { startupFacts } from '../../src/server/startup-log.js';
import { estimatePromptTokens } from '../../src/services/usage/token-estimate.js';
import type { CounterStore, Ticket } from '../../src/stores/counters/counter-store.js';
import { formatDuration } from '../../src/services/limits/refusal.js';

const base = {
  API_KEY: 'sk-client-0123456789abcdef',
  HOST: '127.0.0.1',
  ENDPOINTS: '[{"url":"http://127.0.0.1:8000"}]',
};

function problemsOf(env: Record<string, string>, file?: string): string[] {
  try {
    loadConfig({ env: file ? { ...env, CONFIG_FILE: 'gateway.yaml' } : env, readFile: () => file ?? '' });
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('configuration of keys, limits and shared state', () => {
  it('defaults: SQLite in data/, counters in the process, claims off with the contract defaults', () => {
    const config = loadConfig({ env: base });
    expect(config.database.url).toBe('sqlite:data/gateway.db');
    expect(config.redis.url).toBeUndefined();
    expect(config.limits).toEqual({ models: {}, onStoreError: 'open', defaultReserveTokens: 1024 });
    expect(config.keys.claim).toEqual({
      enabled: false,
      team: 'permissionless',
      expiresIn: 5 * 86_400_000,
      limits: { maxParallel: 3 },
      perIpPerDay: 3,
    });
  });

  it('WORKERS > 1 with limits but no REDIS_URL refuses to start, naming REDIS_URL', () => {
    const problems = problemsOf({ ...base, WORKERS: '2' }, 'limits:\n  global: { rpm: 10 }\n');
    expect(problems).toEqual([
      expect.stringMatching(
        /^redis\.url: REDIS_URL is required with WORKERS=2 because limits\.global is set/,
      ),
    ]);
    expect(problemsOf({ ...base, WORKERS: '2' }, 'keys:\n  claim: { enabled: true }\n')[0]).toContain(
      'keys.claim is enabled',
    );
    expect(
      problemsOf(
        { ...base, WORKERS: '2', REDIS_URL: 'redis://127.0.0.1:6379' },
        'limits:\n  global: { rpm: 10 }\n',
      ),
    ).toEqual([]);
    expect(problemsOf({ ...base, WORKERS: '2' })).toEqual([]);
  });

  it('bad values are named: URLs, limits, durations, prices', () => {
    expect(problemsOf({ ...base, DATABASE_URL: 'mysql://x' })[0]).toMatch(/^DATABASE_URL.*postgres:\/\//);
    expect(problemsOf({ ...base, REDIS_URL: 'http://x' })[0]).toMatch(/^REDIS_URL.*redis:\/\//);
    const file = problemsOf(
      base,
      'limits:\n  global: { rpm: 0 }\n  models: { llama: { budget: { amount: 1, period: week } } }\nkeys:\n  claim: { expiresIn: soon }\npricing:\n  llama: { inputPerMTok: -1, outputPerMTok: 1 }\n',
    ).join('\n');
    expect(file).toContain('limits.global.rpm');
    expect(file).toContain('limits.models.llama.budget.period');
    expect(file).toContain('keys.claim.expiresIn');
    expect(file).toContain('pricing.llama.inputPerMTok');
  });

  it('the config view and the start-up line never show a database or Redis password, or the captcha secret', () => {
    const config = loadConfig({
      env: {
        ...base,
        DATABASE_URL: 'postgres://gw:db-secret-pw@db:5432/gw',
        REDIS_URL: 'redis://:redis-secret-pw@cache:6379',
        CONFIG_FILE: 'gateway.yaml',
      },
      readFile: () =>
        'keys:\n  claim:\n    enabled: true\n    captcha: { verifyUrl: "https://v.example/siteverify", secret: captcha-secret-x }\n',
    });
    const shown =
      JSON.stringify(describeConfig(config)) + JSON.stringify(startupFacts(config, '127.0.0.1:3000'));
    for (const secret of ['db-secret-pw', 'redis-secret-pw', 'captcha-secret-x'])
      expect(shown).not.toContain(secret);
    expect(shown).toContain('postgres://gw:redacted@db:5432/gw');
    expect(shown).toContain('https://v.example/siteverify');
  });

  it('token estimate: text by characters, images flat, tools counted', () => {
    expect(estimatePromptTokens({ messages: [{ role: 'user', content: 'x'.repeat(400) }] })).toBe(104);
    expect(
      estimatePromptTokens({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'abcd' },
              { type: 'image_url', image_url: { url: 'data:…' } },
            ],
          },
        ],
      }),
    ).toBe(4 + 765 + 1);
    expect(
      estimatePromptTokens({ messages: [], tools: [{ type: 'function', function: { name: 'f' } }] }),
    ).toBeGreaterThan(5);
    expect(estimatePromptTokens({ messages: 'junk' })).toBe(0);
  });

  it('reset durations in OpenAI’s format', () => {
    expect(formatDuration(20)).toBe('20ms');
    expect(formatDuration(1_000)).toBe('1s');
    expect(formatDuration(360_000)).toBe('6m0s');
    expect(formatDuration(3_723_000)).toBe('1h2m3s');
    expect(formatDuration(60_100)).toBe('1m0.1s');
    expect(formatDuration(57_001)).toBe('57.1s');
    // The last value is kept for the next answer: a repeated or a changed one is still right.
    expect(formatDuration(60_050)).toBe('1m0.1s');
    expect(formatDuration(60_100)).toBe('1m0.1s');
    expect(formatDuration(60_101)).toBe('1m0.2s');
    expect(formatDuration(60_001)).toBe('1m0.1s');
    expect(formatDuration(60_000)).toBe('1m0s');
  });
});

/** A limiter on `counters`, configured by a gateway.yaml of `yaml`; its log lines go to `stream` if given. */
async function limiterWith(yaml: string, counters: CounterStore, stream?: { write: (line: string) => void }) {
  const { ConfigStore } = await import('../../src/config/config-store.js');
  const { Limiter } = await import('../../src/services/limits/limiter.js');
  const { createLogger } = await import('../../src/observability/logger.js');
  const config = loadConfig({ env: { ...base, CONFIG_FILE: 'gateway.yaml' }, readFile: () => yaml });
  return new Limiter({
    counters,
    config: new ConfigStore(config),
    logger: createLogger(stream ? { level: 'info', stream } : { level: 'silent' }),
  });
}

describe('the limiter reads its tables by own entries only', () => {
  it('a model named like an Object method has no limits and no price', async () => {
    const { MemoryCounters } = await import('../../src/stores/counters/memory-counters.js');
    const limiter = await limiterWith(
      'pricing:\n  llama: { inputPerMTok: 1, outputPerMTok: 2 }\nlimits:\n  models:\n    llama: { rpm: 5 }\n',
      new MemoryCounters(),
    );
    const { staticPrincipal } = await import('../../src/services/core/principal.js');
    const principal = staticPrincipal(Buffer.alloc(32));
    for (const model of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expect(limiter.admit({ principal, model, json: {} })).toBeUndefined();
      expect(limiter.costOf({ promptTokens: 10, completionTokens: 10, servedModel: model }, model)).toBe(0);
    }
    expect(limiter.costOf({ promptTokens: 1_000_000, completionTokens: 1_000_000 }, 'llama')).toBe(3);
    expect(limiter.admit({ principal, model: 'llama', json: {} })).toBeInstanceOf(Promise);
    limiter.stop();
  });
});

describe('the limiter when the counter store fails at the end of a request', () => {
  it('with onStoreError closed, a failed release is noted once and rejects nothing unhandled', async () => {
    const { MemoryCounters } = await import('../../src/stores/counters/memory-counters.js');
    const { staticPrincipal } = await import('../../src/services/core/principal.js');
    // The store answers the admission, then is unreachable when the request ends.
    const counters = new MemoryCounters();
    let down = false;
    const lost = () => Promise.reject(new Error('connection lost'));
    const failing = Object.assign(Object.create(counters) as typeof counters, {
      release: (t: Ticket, keys: readonly string[]) => (down ? lost() : counters.release(t, keys)),
      correct: (t: Ticket, keys: readonly string[], amount: number) =>
        down ? lost() : counters.correct(t, keys, amount),
    });
    const lines: string[] = [];
    const limiter = await limiterWith(
      'limits:\n  global: { rpm: 5, tpm: 100000, maxParallel: 2 }\n  onStoreError: closed\n',
      failing,
      { write: (line: string) => lines.push(line) },
    );
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      const principal = staticPrincipal(Buffer.alloc(32));
      const admission = await limiter.admit({ principal, model: 'm', json: { max_tokens: 10 } });
      expect(admission).toBeDefined();
      down = true;
      admission!.finish({ promptTokens: 3, completionTokens: 4 });
      // Rejections are reported once the microtasks have run: two turns of the event loop.
      for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
      expect(limiter.status.reachable).toBe(false);
      expect(lines.filter((l) => l.includes('limit counters unreachable'))).toHaveLength(1);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      limiter.stop();
    }
  });
});

describe('review fixes: settings checked before they can crash, warnings, redaction', () => {
  it('TRUST_PROXY is checked like the rest: a bad value is a problem, not a crash at start', () => {
    expect(problemsOf({ ...base, TRUST_PROXY: 'bogus' })[0]).toMatch(
      /^TRUST_PROXY \(server\.trustProxy\): must be true, false/,
    );
    for (const ok of [
      'false',
      'true',
      '1',
      'loopback',
      '10.0.0.0/8, ::1',
      '10.0.0.5',
      'fd00::/8, uniquelocal',
    ])
      expect(problemsOf({ ...base, TRUST_PROXY: ok }), ok).toEqual([]);
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'loopback,, x'])
      expect(problemsOf({ ...base, TRUST_PROXY: bad }), bad).toHaveLength(1);
  });

  it('warns of claims without a captcha off loopback, and of budgets nothing is priced for', async () => {
    const { configOrigin } = await import('../../src/config/load-config.js');
    const config = loadConfig({
      env: {
        ...base,
        HOST: '0.0.0.0',
        API_KEY: 'sk-client-5f0c2a9e8b7d6c5f4e3d2c1b',
        CONFIG_FILE: 'gateway.yaml',
      },
      readFile: () =>
        'keys:\n  claim: { enabled: true }\nlimits:\n  keyDefaults: { budget: { amount: 5, period: month } }\n',
    });
    const warnings = configOrigin(config)!.warnings.join('\n');
    expect(warnings).toContain('keys.claim is enabled without a captcha');
    expect(warnings).toContain('a budget is set but `pricing` lists no model');
  });

  it('query-string passwords of database and Redis URLs are redacted too', async () => {
    const { withoutPassword } = await import('../../src/config/config-problems.js');
    expect(withoutPassword('postgres://u@db/gw?password=pgS3cret&sslmode=require')).toBe(
      'postgres://u@db/gw?password=redacted&sslmode=require',
    );
    expect(withoutPassword('redis://cache:6379/?password=x')).not.toContain('=x');
  });

  it('claims are counted per IPv4 address and per IPv6 /64', async () => {
    const { addressScope } = await import('../../src/services/keys/claim-service.js');
    expect(addressScope('203.0.113.7')).toBe('203.0.113.7');
    expect(addressScope('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressScope('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressScope('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressScope('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressScope('::1')).toBe('0:0:0:0::/64');
  });
});
