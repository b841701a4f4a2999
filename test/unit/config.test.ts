import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type Env } from '../../src/config/load-config.js';
import type { GatewayConfig } from '../../src/config/types.js';

const ONE_ENDPOINT = JSON.stringify([{ url: 'https://gpu-a.example' }]);
const base: Env = { API_KEY: 'sk-client-0123456789', ENDPOINTS: ONE_ENDPOINT };

function load(env: Env, readFile?: (file: string) => string): GatewayConfig {
  return loadConfig({ env, readFile });
}

function configError(env: Env, readFile?: (file: string) => string): ConfigError {
  try {
    load(env, readFile);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected loadConfig to throw a ConfigError');
}

const endpoints = (...eps: unknown[]): Env => ({ ...base, ENDPOINTS: JSON.stringify(eps) });

const files = (content: Record<string, string>) => (file: string) => {
  const text = content[path.basename(file)];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: ${file}`), { code: 'ENOENT' });
  return text;
};

describe('defaults', () => {
  it('fills every documented default', () => {
    const c = load(base);
    expect(c.server).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      bodyLimit: 10 * 1024 * 1024,
      shutdownGraceMs: 30_000,
      cors: { origins: ['*'] },
    });
    expect(c.server.bodyLimit).toBe(10485760);
    expect(c.models).toMatchObject({ ownedBy: 'proxy', discoveryIntervalMs: 30_000 });
    expect(c.routing).toEqual({
      strategy: 'weighted',
      maxAttempts: 3,
      timeouts: {
        connectMs: 5000,
        firstByteMs: 120_000,
        idleMs: 60_000,
        totalMs: 600_000,
        minBytesPerSecond: 0,
        throughputWindowMs: 10_000,
      },
      affinity: undefined,
      hedge: { delayMs: 0, models: [] },
      continuation: true,
      forwardHeaders: [],
      continuationMaxBytes: 1024 * 1024,
      continuationBudgetBytes: 64 * 1024 * 1024,
    });
    expect(c.logging).toEqual({ level: 'info', file: false, filePath: 'logs/gateway.log' });
    expect(c.auth).toEqual({
      apiKeys: ['sk-client-0123456789'],
      adminKey: undefined,
      disabled: false,
      allowWeakKeys: false,
      jwt: { secret: undefined, publicKey: undefined, issuer: undefined, audience: undefined },
    });
  });
});

describe('client API keys', () => {
  it('splits API_KEY on commas, trims and drops empties', () => {
    expect(load({ ...base, HOST: '127.0.0.1', API_KEY: ' k1 , k2,,  ,k3 ' }).auth.apiKeys).toEqual([
      'k1',
      'k2',
      'k3',
    ]);
  });

  it('accepts PROXY_API_KEY as an alias, API_KEY winning when both are set', () => {
    const noKey: Env = { ENDPOINTS: ONE_ENDPOINT, HOST: '127.0.0.1' };
    expect(load({ ...noKey, PROXY_API_KEY: 'p1,p2' }).auth.apiKeys).toEqual(['p1', 'p2']);
    expect(load({ ...noKey, API_KEY: 'a', PROXY_API_KEY: 'p' }).auth.apiKeys).toEqual(['a']);
  });

  it('requires a key unless AUTH_DISABLED=true', () => {
    const { API_KEY: _unused, ...noKey } = base;
    expect(configError(noKey).message).toMatch(/API_KEY/);
    expect(configError({ ...noKey, API_KEY: ' , ,' }).message).toMatch(/API_KEY/);
    const c = load({ ...noKey, AUTH_DISABLED: 'true' });
    expect(c.auth.disabled).toBe(true);
    expect(c.auth.apiKeys).toEqual([]);
  });
});

describe('endpoints', () => {
  it.each([
    ['https://a.example/', 'https://a.example'],
    ['https://a.example/v1', 'https://a.example'],
    ['https://a.example/v1/', 'https://a.example'],
    ['https://a.example', 'https://a.example'],
    ['http://10.0.0.5:8000/v1', 'http://10.0.0.5:8000'],
    ['https://a.example/openai/v1/', 'https://a.example/openai'],
    ['https://a.example/prefix/', 'https://a.example/prefix'],
  ])('normalises %s to %s', (url, expected) => {
    expect(load(endpoints({ url })).endpoints[0]!.url).toBe(expected);
  });

  it('defaults priority 1 and weight 1', () => {
    const [ep] = load(endpoints({ url: 'https://a.example', apiKey: 'sk-up' })).endpoints;
    expect(ep).toMatchObject({ priority: 1, weight: 1, apiKey: 'sk-up', models: undefined });
  });

  it('keeps weight 0 as 0 (drained; the original gateway treated it as 1)', () => {
    const c = load(
      endpoints({ url: 'https://a.example', weight: 0 }, { url: 'https://b.example', weight: 2 }),
    );
    expect(c.endpoints.map((e) => e.weight)).toEqual([0, 2]);
  });

  it('derives names from the host (with port) and de-duplicates them', () => {
    const c = load(
      endpoints(
        { url: 'http://10.0.0.1:8000/v1' },
        { url: 'http://10.0.0.1:8000/other' },
        { url: 'https://b.example' },
        { url: 'http://c.example:81', name: 'c.example:81' },
        { url: 'http://c.example:81/x' },
      ),
    );
    expect(c.endpoints.map((e) => e.name)).toEqual([
      '10.0.0.1:8000',
      '10.0.0.1:8000-2',
      'b.example',
      'c.example:81',
      'c.example:81-2',
    ]);
  });

  it('rejects explicit duplicate names', () => {
    const err = configError(
      endpoints({ url: 'https://a.example', name: 'gpu-a' }, { url: 'https://b.example', name: 'gpu-a' }),
    );
    expect(err.message).toMatch(/endpoints\[1\]/);
    expect(err.message).toMatch(/gpu-a/);
  });

  it('lets per-endpoint timeouts override the globals, the others inherit', () => {
    const c = load({
      ...endpoints(
        { url: 'https://a.example', timeouts: { firstByteMs: 1000, totalMs: 2000 } },
        { url: 'https://b.example' },
      ),
      CONNECT_TIMEOUT_MS: '700',
    });
    expect(c.endpoints[0]!.timeouts).toEqual({
      connectMs: 700,
      firstByteMs: 1000,
      idleMs: 60_000,
      totalMs: 2000,
      minBytesPerSecond: 0,
      throughputWindowMs: 10_000,
    });
    expect(c.endpoints[1]!.timeouts).toEqual({ ...c.routing.timeouts });
    expect(c.routing.timeouts.connectMs).toBe(700);
  });
});

describe('environment variables of the configuration table', () => {
  it.each<[string, string, (c: GatewayConfig) => unknown, unknown]>([
    ['PORT', '8080', (c) => c.server.port, 8080],
    ['HOST', '127.0.0.1', (c) => c.server.host, '127.0.0.1'],
    ['BODY_LIMIT', '20mb', (c) => c.server.bodyLimit, 20 * 1024 * 1024],
    ['BODY_LIMIT', '512kb', (c) => c.server.bodyLimit, 512 * 1024],
    ['FILE_LOGGING', 'true', (c) => c.logging.file, true],
    ['LOG_FILE', '/var/log/gw.log', (c) => c.logging.filePath, '/var/log/gw.log'],
    ['LOG_LEVEL', 'debug', (c) => c.logging.level, 'debug'],
    ['MODELS_OWNED_BY', 'akash', (c) => c.models.ownedBy, 'akash'],
    ['DISCOVERY_INTERVAL_MS', '12345', (c) => c.models.discoveryIntervalMs, 12345],
    ['ROUTING_STRATEGY', 'least-outstanding', (c) => c.routing.strategy, 'least-outstanding'],
    ['MAX_ATTEMPTS', '5', (c) => c.routing.maxAttempts, 5],
    ['CONNECT_TIMEOUT_MS', '1111', (c) => c.routing.timeouts.connectMs, 1111],
    ['FIRST_BYTE_TIMEOUT_MS', '2222', (c) => c.routing.timeouts.firstByteMs, 2222],
    ['IDLE_TIMEOUT_MS', '3333', (c) => c.routing.timeouts.idleMs, 3333],
    ['REQUEST_TIMEOUT_MS', '4444', (c) => c.routing.timeouts.totalMs, 4444],
    ['SHUTDOWN_GRACE_MS', '5555', (c) => c.server.shutdownGraceMs, 5555],
    ['ADMIN_API_KEY', 'sk-admin-0123456789', (c) => c.auth.adminKey, 'sk-admin-0123456789'],
  ])('%s=%s', (name, value, get, expected) => {
    expect(get(load({ ...base, [name]: value }))).toEqual(expected);
  });
});

const YAML_FILE = `
server: { port: "\${GW_PORT:-4100}", host: 127.0.0.1, bodyLimit: 2mb }
auth: { apiKeys: ["\${API_KEY}"], adminKey: "\${ADMIN_API_KEY:-}" }
logging: { level: warn }
models: { ownedBy: "\${OWNER:-file-owner}" }
endpoints:
  - { name: gpu-a, url: "https://a.example/v1", apiKey: "\${KEY_A}", priority: 1, weight: 3 }
  - { name: gpu-b, url: "https://b.example", apiKey: "\${KEY_B}", priority: 2, models: [llama-3-70b] }
routing:
  strategy: least-outstanding
  maxAttempts: 4
  timeouts: { connectMs: 1000, firstByteMs: 2000, idleMs: 3000, totalMs: 4000 }
`;

describe('CONFIG_FILE', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('reads YAML with ${VAR} and ${VAR:-default} interpolation', () => {
    const seen: string[] = [];
    const read = (file: string) => (seen.push(file), YAML_FILE);
    const c = loadConfig({
      env: { CONFIG_FILE: 'gw.yaml', API_KEY: 'sk-c', KEY_A: 'sk-a', KEY_B: 'sk-b' },
      readFile: read,
      cwd: '/etc/gateway',
    });
    expect(seen).toEqual([path.resolve('/etc/gateway', 'gw.yaml')]);
    expect(c.server).toMatchObject({ port: 4100, host: '127.0.0.1', bodyLimit: 2 * 1024 * 1024 });
    expect(c.auth).toMatchObject({
      apiKeys: ['sk-c'],
      adminKey: undefined,
      disabled: false,
      allowWeakKeys: false,
    });
    expect(c.logging.level).toBe('warn');
    expect(c.models.ownedBy).toBe('file-owner');
    expect(c.endpoints).toMatchObject([
      { name: 'gpu-a', url: 'https://a.example', apiKey: 'sk-a', priority: 1, weight: 3 },
      { name: 'gpu-b', url: 'https://b.example', apiKey: 'sk-b', priority: 2, models: ['llama-3-70b'] },
    ]);
    expect(c.routing).toEqual({
      strategy: 'least-outstanding',
      maxAttempts: 4,
      timeouts: {
        connectMs: 1000,
        firstByteMs: 2000,
        idleMs: 3000,
        totalMs: 4000,
        minBytesPerSecond: 0,
        throughputWindowMs: 10_000,
      },
      affinity: undefined,
      hedge: { delayMs: 0, models: [] },
      continuation: true,
      forwardHeaders: [],
      continuationMaxBytes: 1024 * 1024,
      continuationBudgetBytes: 64 * 1024 * 1024,
    });
    expect(c.endpoints[1]!.timeouts).toEqual(c.routing.timeouts);
  });

  it('reads JSON with interpolation; unset ${VAR} becomes empty', () => {
    const json = JSON.stringify({
      server: { port: '${GW_PORT:-4200}' },
      auth: { apiKeys: ['${CLIENT_KEY}'] },
      endpoints: [{ url: 'http://gpu:8000/v1/', apiKey: '${MISSING_KEY}', weight: '${W:-0}' }],
    });
    const c = load(
      { CONFIG_FILE: 'gw.json', CLIENT_KEY: 'sk-j-0123456789abcdef', GW_PORT: '4300' },
      files({ 'gw.json': json }),
    );
    expect(c.server.port).toBe(4300);
    expect(c.auth.apiKeys).toEqual(['sk-j-0123456789abcdef']);
    expect(c.endpoints[0]).toMatchObject({ name: 'gpu:8000', url: 'http://gpu:8000', weight: 0 });
    expect(c.endpoints[0]!.apiKey).toBeUndefined();
  });

  it("lets the environment override the file's values", () => {
    const c = load(
      {
        CONFIG_FILE: 'gw.yaml',
        API_KEY: 'env-1,env-2',
        KEY_A: 'sk-a',
        PORT: '5000',
        MODELS_OWNED_BY: 'env-owner',
        MAX_ATTEMPTS: '2',
        IDLE_TIMEOUT_MS: '9000',
        ENDPOINTS: JSON.stringify([{ url: 'https://env.example', name: 'from-env' }]),
      },
      files({ 'gw.yaml': YAML_FILE }),
    );
    expect(c.server.port).toBe(5000);
    expect(c.server.host).toBe('127.0.0.1');
    expect(c.auth.apiKeys).toEqual(['env-1', 'env-2']);
    expect(c.models.ownedBy).toBe('env-owner');
    expect(c.routing.maxAttempts).toBe(2);
    expect(c.routing.timeouts).toMatchObject({
      connectMs: 1000,
      firstByteMs: 2000,
      idleMs: 9000,
      totalMs: 4000,
    });
    expect(c.endpoints.map((e) => e.name)).toEqual(['from-env']);
  });

  it('reads a real file on disk, relative to cwd', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'gw-config-'));
    writeFileSync(path.join(dir, 'gateway.yml'), YAML_FILE);
    const env = { CONFIG_FILE: 'gateway.yml', API_KEY: 'sk-c', KEY_A: 'sk-a', OWNER: 'disk' };
    const c = loadConfig({ env, cwd: dir });
    expect(c.models.ownedBy).toBe('disk');
    expect(c.endpoints.map((e) => e.name)).toEqual(['gpu-a', 'gpu-b']);
    expect(loadConfig({ env: { ...env, CONFIG_FILE: path.join(dir, 'gateway.yml') } }).server.port).toBe(
      4100,
    );
  });

  it('accepts the keys of later features (hedge, affinity, continuation, aliases, health)', () => {
    const yaml = `${YAML_FILE}
  continuation: false
  hedge: { delayMs: p95 }
  affinity: { header: x-session-id, userField: true, loadFactor: 1.25 }
aliases:
  fast: [llama-3-8b, qwen-7b]
health:
  probeIntervalMs: 10000
  ejection: { consecutiveFailures: 3, baseEjectionMs: 10000, maxEjectedPercent: 50 }
`;
    const c = load({ CONFIG_FILE: 'gw.yaml', API_KEY: 'k' }, files({ 'gw.yaml': yaml }));
    expect(c.aliases).toEqual({ fast: ['llama-3-8b', 'qwen-7b'] });
    expect(c.health.ejection).toMatchObject({ consecutiveFailures: 3, maxEjectedPercent: 50 });
  });

  it('reports a missing file, injected or on disk', () => {
    expect(configError({ ...base, CONFIG_FILE: 'nope.yaml' }, files({})).message).toMatch(
      /CONFIG_FILE nope\.yaml: file not found/,
    );
    const onDisk = path.join(tmpdir(), `gw-missing-${process.pid}-${Date.now()}.yaml`);
    expect(configError({ ...base, CONFIG_FILE: onDisk }).message).toMatch(/CONFIG_FILE .*file not found/);
  });

  it('reports a file that is not a mapping', () => {
    const err = configError({ ...base, CONFIG_FILE: 'list.yaml' }, files({ 'list.yaml': '- a\n- b\n' }));
    expect(err.message).toMatch(/CONFIG_FILE list\.yaml/);
  });
});

describe('errors', () => {
  it('lists every problem at once, naming the variable, endpoint and field', () => {
    const err = configError({
      ...endpoints(
        { name: 'gpu-a', url: 'not a url' },
        { name: 'gpu-b', url: 'https://b.example', weight: -1 },
      ),
      PORT: 'abc',
    });
    expect(err.problems.length).toBeGreaterThanOrEqual(3);
    expect(err.message).toMatch(/PORT/);
    expect(err.message).toMatch(/endpoints\[0\] \(gpu-a\).*url/);
    expect(err.message).toMatch(/endpoints\[1\] \(gpu-b\)\.weight/);
    expect(err.name).toBe('ConfigError');
  });

  it('labels an unnamed endpoint with its url', () => {
    const err = configError(
      endpoints({ url: 'https://a.example' }, { url: 'https://b.example', priority: 1.5 }),
    );
    expect(err.message).toMatch(/endpoints\[1\] \(https:\/\/b\.example\)\.priority/);
  });

  it('reports a cross-field problem (no API key) together with schema problems', () => {
    const { API_KEY: _unused, ...noKey } = base;
    const err = configError({ ...noKey, PORT: '99999' });
    expect(err.message).toMatch(/PORT/);
    expect(err.message).toMatch(/API_KEY/);
  });

  it('says what is wrong with an out-of-range number rather than "must be a number"', () => {
    const port = configError({ ...base, PORT: '70000' }).message;
    expect(port).toMatch(/PORT/);
    expect(port).toMatch(/65535/);
    expect(configError({ ...base, MAX_ATTEMPTS: '0' }).message).toMatch(/MAX_ATTEMPTS.*(1|at least|>=)/);
  });

  it('reports invalid ENDPOINTS JSON', () => {
    const err = configError({ ...base, ENDPOINTS: '[{url: https://a.example}]' });
    expect(err.message).toMatch(/ENDPOINTS: not valid JSON/);
  });

  it('reports an unknown endpoint field such as a typo', () => {
    const err = configError(endpoints({ name: 'gpu-a', url: 'https://a.example', wieght: 2 }));
    expect(err.message).toMatch(/endpoints\[0\] \(gpu-a\)/);
    expect(err.message).toMatch(/'wieght'/);
  });

  it('reports a missing endpoint url', () => {
    expect(configError(endpoints({ name: 'gpu-a' })).message).toMatch(/endpoints\[0\] \(gpu-a\)\.url/);
  });

  it.each([
    ['ROUTING_STRATEGY', 'random'],
    ['BODY_LIMIT', 'lots'],
    ['MAX_ATTEMPTS', '0'],
    ['IDLE_TIMEOUT_MS', '-5'],
    ['LOG_LEVEL', 'verbose'],
  ])('names %s when %s is invalid', (name, value) => {
    expect(configError({ ...base, [name]: value }).message).toContain(name);
  });

  it('explains how to start without endpoints (npm run demo)', () => {
    const err = configError({ API_KEY: 'k' });
    expect(err.message).toMatch(/ENDPOINTS/);
    expect(err.message).toContain('npm run demo');
  });
});

describe('frozen result', () => {
  it('is deeply frozen', () => {
    const c = load(endpoints({ url: 'https://a.example', models: ['m'], timeouts: { idleMs: 5 } }));
    for (const o of [c, c.server, c.auth, c.auth.apiKeys, c.endpoints, c.endpoints[0]!, c.routing]) {
      expect(Object.isFrozen(o)).toBe(true);
    }
    expect(Object.isFrozen(c.endpoints[0]!.timeouts)).toBe(true);
    expect(Object.isFrozen(c.endpoints[0]!.models)).toBe(true);
    expect(Object.isFrozen(c.routing.timeouts)).toBe(true);
    expect(() => {
      (c.server as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => (c.endpoints as unknown[]).push({})).toThrow(TypeError);
  });
});

describe('secrets never appear in errors', () => {
  const SECRET = 'sk-upstream-SECRET-0123456789';

  it('in an otherwise-invalid endpoint', () => {
    const err = configError({
      ...endpoints(
        { url: 'not a url', apiKey: SECRET, weight: -1, priority: 'high' },
        { url: 'ftp://b.example', apiKey: SECRET, wieght: 1 },
        { apiKey: SECRET, name: 'no-url' },
      ),
      ADMIN_API_KEY: 'sk-admin-SECRET',
      PORT: 'x',
    });
    expect(err.problems.length).toBeGreaterThanOrEqual(5);
    expect(err.message).not.toContain(SECRET);
    expect(err.message).not.toContain('sk-admin-SECRET');
    expect(err.message).not.toContain('sk-client');
  });

  it('in a mistyped key field or a file', () => {
    expect(configError(endpoints({ url: 'https://a.example', api_key: SECRET })).message).not.toContain(
      SECRET,
    );
    const yaml = 'endpoints:\n  - { url: "ftp://x", apiKey: "${KEY_A}", weight: -3 }\n';
    const err = configError(
      { CONFIG_FILE: 'gw.yaml', API_KEY: 'k', KEY_A: SECRET },
      files({ 'gw.yaml': yaml }),
    );
    expect(err.message).toMatch(/weight/);
    expect(err.message).not.toContain(SECRET);
  });

  it('in invalid ENDPOINTS JSON (an unquoted key must not be echoed)', () => {
    const err = configError({ ...base, ENDPOINTS: `[{"url":"https://a.example","apiKey":${SECRET}}]` });
    expect(err.message).toMatch(/ENDPOINTS/);
    // Not even a prefix: V8's JSON.parse messages quote the ~10 characters after the bad token.
    expect(err.message).not.toContain(SECRET.slice(0, 8));
  });
});
