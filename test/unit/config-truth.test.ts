import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configLines, describeConfig, REDACTED } from '../../src/config/describe-config.js';
import {
  ConfigError,
  configOrigin,
  loadConfig,
  readEnvFile,
  type Env,
} from '../../src/config/load-config.js';

const KEY = 'sk-client-0123456789abcdef';
const ONE = JSON.stringify([{ url: 'https://gpu-a.example' }]);

function attempt(env: Env, file?: string): { problems: string[]; warnings: string[] } {
  try {
    const config = loadConfig({ env, readFile: () => file ?? '' });
    return { problems: [], warnings: [...(configOrigin(config)?.warnings ?? [])] };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { problems: [...err.problems], warnings: [...err.warnings] };
  }
}

const GATEWAY_YAML = `
routing: { maxAttempts: 5, strategy: least-outstanding }
endpoints:
  - { name: file-a, url: "https://a.example", apiKey: "\${KEY_A}" }
`;

describe('configuration sources (issue 11, part 1)', () => {
  it('says which environment variable replaces which file setting', () => {
    const { problems, warnings } = attempt(
      { API_KEY: KEY, CONFIG_FILE: 'gateway.yaml', ENDPOINTS: ONE, MAX_ATTEMPTS: '2', KEY_A: 'sk-a' },
      GATEWAY_YAML,
    );
    expect(problems).toEqual([]);
    expect(warnings).toContain('ENDPOINTS (environment) replaces endpoints in gateway.yaml');
    expect(warnings).toContain('MAX_ATTEMPTS (environment) replaces routing.maxAttempts in gateway.yaml');
    expect(warnings.join('\n')).not.toMatch(/strategy/);
  });

  it('says so for a variable that came from .env', () => {
    const config = loadConfig({
      env: { API_KEY: KEY, CONFIG_FILE: 'gateway.yaml', ENDPOINTS: ONE, KEY_A: 'sk-a' },
      readFile: () => GATEWAY_YAML,
      envFile: { path: '/srv/.env', names: new Set(['ENDPOINTS']) },
    });
    expect(configOrigin(config)?.warnings).toContain('ENDPOINTS (.env) replaces endpoints in gateway.yaml');
  });

  it('warns, naming it, about a ${VAR} of the file that is not set', () => {
    const { warnings } = attempt({ API_KEY: KEY, CONFIG_FILE: 'gateway.yaml' }, GATEWAY_YAML);
    expect(warnings).toContain(
      'gateway.yaml: ${KEY_A} is not set in the environment, so endpoints[0].apiKey lacks it',
    );
    // ${VAR:-default} is not a warning.
    const ok = attempt(
      { API_KEY: KEY, CONFIG_FILE: 'g.yaml' },
      'endpoints: [{ url: "https://a.example", apiKey: "${KEY_A:-none}" }]\n',
    );
    expect(ok.warnings).toEqual([]);
  });

  it('names the file when CONFIG_FILE has no endpoints', () => {
    const { problems } = attempt(
      { API_KEY: KEY, CONFIG_FILE: 'gateway.yaml' },
      'routing: { maxAttempts: 2 }\n',
    );
    expect(problems).toEqual([
      'CONFIG_FILE gateway.yaml lists no endpoints: add an `endpoints:` list to it (see README.md, Config file), or set ENDPOINTS',
    ]);
  });

  it('reports a YAML key given twice by name and line, without a dangling colon', () => {
    const { problems } = attempt(
      { API_KEY: KEY, CONFIG_FILE: 'gateway.yaml' },
      'endpoints:\n  - url: https://a.example\nrouting: {}\nendpoints:\n  - url: https://b.example\n',
    );
    expect(problems).toEqual([
      "CONFIG_FILE gateway.yaml: could not be parsed: line 4: the key 'endpoints' appears twice in the same section",
    ]);
  });

  it('reports tabs and unclosed brackets with their line, in words', () => {
    expect(attempt({ API_KEY: KEY, CONFIG_FILE: 'g.yaml' }, 'server:\n\tport: 3\n').problems).toEqual([
      'CONFIG_FILE g.yaml: could not be parsed: line 2: indentation must use spaces, not tabs',
    ]);
    const [bracket] = attempt({ API_KEY: KEY, CONFIG_FILE: 'g.yaml' }, 'a: [1, 2\nb: 3\n').problems;
    expect(bracket).toMatch(/^CONFIG_FILE g\.yaml: could not be parsed: line 2: .*\]$/);
    expect(bracket).not.toMatch(/:$/);
  });

  it('warns about endpoints listed twice under one URL', () => {
    const { warnings } = attempt({
      API_KEY: KEY,
      ENDPOINTS: JSON.stringify([
        { url: 'https://a.example', name: 'a' },
        { url: 'https://b.example', name: 'b' },
        { url: 'https://a.example/v1/', name: 'a-again' },
      ]),
    });
    expect(warnings).toEqual([
      'ENDPOINTS: endpoints[2] (a-again) has the same url as endpoints[0] (a), https://a.example: that server takes the traffic of both entries',
    ]);
  });

  it('takes the base URL from a url that ends in a route, and says so', () => {
    const config = loadConfig({
      env: {
        API_KEY: KEY,
        ENDPOINTS: JSON.stringify([
          { url: 'https://a.example/v1/chat/completions', name: 'a' },
          { url: 'https://b.example/openai/chat/completions/', name: 'b' },
        ]),
      },
    });
    expect(config.endpoints.map((e) => e.url)).toEqual(['https://a.example', 'https://b.example/openai']);
    expect(configOrigin(config)?.warnings).toEqual([
      'ENDPOINTS: endpoints[0] (a).url ends in /v1/chat/completions: using https://a.example, the base URL, instead',
      'ENDPOINTS: endpoints[1] (b).url ends in /chat/completions: using https://b.example/openai, the base URL, instead',
    ]);
  });

  it('never answers in zod’s own words', () => {
    const bad: Env[] = [
      { PORT: '70000' },
      { WORKERS: '0' },
      { MAX_ATTEMPTS: '50' },
      { AFFINITY_LOAD_FACTOR: '0.5' },
      { ROUTING_STRATEGY: 'random' },
      { HEDGE_DELAY_MS: 'soon' },
      {
        ENDPOINTS: JSON.stringify([
          { url: 'https://a', priority: -1, weight: 'x', maxConcurrent: 0, models: [] },
        ]),
      },
      { ENDPOINTS: JSON.stringify([{ url: 'https://a', timeouts: { connectMs: -5, foo: 1 } }]) },
      { ENDPOINTS: JSON.stringify([{ url: 'https://a', apiKey: 5, models: 'x', modelNames: { a: '' } }]) },
      { ENDPOINTS: JSON.stringify(['https://a']) },
    ];
    const file =
      'server: 5\naliases: {fast: llama}\nhealth: {ejection: {failureRatio: 2}}\n' +
      'routing: {hedge: {delayMs: -1}, affinity: {header: ""}}\nendpoints: [{url: "https://a"}]\n';
    const all = [
      ...bad.flatMap((env) => attempt({ API_KEY: KEY, ENDPOINTS: ONE, ...env }).problems),
      ...attempt({ API_KEY: KEY, CONFIG_FILE: 'g.yaml' }, file).problems,
    ];
    expect(all.length).toBeGreaterThan(20);
    for (const p of all) {
      expect(p).not.toMatch(/Invalid input|Invalid option|Too small|Too big|expected \w+, received|>=|<=/);
    }
  });
});

describe('the effective configuration, with sources (GET /api/v1/config, --check-config)', () => {
  it('gives each value its source and never a key', () => {
    const config = loadConfig({
      env: {
        API_KEY: KEY,
        ADMIN_API_KEY: 'sk-admin-0123456789abcdef',
        CONFIG_FILE: 'gateway.yaml',
        KEY_A: 'sk-upstream-secret-a',
        FIRST_BYTE_TIMEOUT_MS: '25000',
        LOG_LEVEL: 'warn',
      },
      readFile: () => GATEWAY_YAML,
      envFile: { path: '/srv/.env', names: new Set(['LOG_LEVEL']) },
    });
    const view = describeConfig(config);
    const text = JSON.stringify(view);
    for (const secret of [KEY, 'sk-admin-0123456789abcdef', 'sk-upstream-secret-a'])
      expect(text).not.toContain(secret);
    const s = view.settings as Record<string, any>;
    expect(s.server.port).toEqual({ value: 3000, source: 'default' });
    expect(s.routing.maxAttempts).toEqual({ value: 5, source: 'file', file: 'gateway.yaml' });
    expect(s.routing.timeouts.firstByteMs).toEqual({
      value: 25000,
      source: 'env',
      variable: 'FIRST_BYTE_TIMEOUT_MS',
    });
    expect(s.logging.level).toEqual({ value: 'warn', source: 'env', variable: 'LOG_LEVEL', file: '.env' });
    expect(s.auth.apiKeys).toEqual({ value: [REDACTED], source: 'env', variable: 'API_KEY' });
    expect(s.auth.adminKey).toEqual({ value: REDACTED, source: 'env', variable: 'ADMIN_API_KEY' });
    expect(s.endpoints[0].apiKey).toEqual({ value: REDACTED, source: 'file', file: 'gateway.yaml' });
    expect(s.endpoints[0].priority).toEqual({ value: 1, source: 'default' });
    // An endpoint's timeout it does not set is the global one, with that one's source.
    expect(s.endpoints[0].timeouts.firstByteMs).toEqual({
      value: 25000,
      source: 'env',
      variable: 'FIRST_BYTE_TIMEOUT_MS',
    });
    expect(s.endpoints[0].timeouts.idleMs).toEqual({ value: 60000, source: 'default' });
    expect(view.files).toEqual({ configFile: path.resolve('gateway.yaml'), envFile: '/srv/.env' });

    const lines = configLines(view);
    expect(lines).toContainEqual(expect.stringMatching(/^routing\.maxAttempts = 5 +\(file gateway\.yaml\)$/));
    expect(lines).toContainEqual(
      expect.stringMatching(/^logging\.level = "warn" +\(env LOG_LEVEL in \.env\)$/),
    );
    expect(lines.join('\n')).not.toContain('sk-upstream-secret-a');
  });

  it('marks what ENDPOINTS did not give as default, not as env', () => {
    const view = describeConfig(loadConfig({ env: { API_KEY: KEY, ENDPOINTS: ONE } }));
    const ep = (view.settings.endpoints as Array<Record<string, unknown>>)[0]!;
    expect(ep.url).toEqual({ value: 'https://gpu-a.example', source: 'env', variable: 'ENDPOINTS' });
    expect(ep.weight).toEqual({ value: 1, source: 'default' });
  });
});

describe('.env', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is read without being copied into the environment, and the environment wins', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'gw-dotenv-'));
    writeFileSync(path.join(dir, '.env'), 'PORT=4000\nLOG_LEVEL=debug\nEMPTY=\n');
    const found = readEnvFile({ PORT: '5000' }, dir);
    expect(found?.path).toBe(path.join(dir, '.env'));
    expect(found?.values).toEqual({ PORT: '4000', LOG_LEVEL: 'debug' });
    expect([...(found?.names ?? [])]).toEqual(['LOG_LEVEL']);
    expect(process.env.LOG_LEVEL === 'debug' && process.env.PORT === '4000').toBe(false);
    expect(readEnvFile({}, path.join(dir, 'nowhere'))).toBeUndefined();
  });
});

describe('unsafe settings (issue 11, part 2)', () => {
  const ADVICE = /HOST 0\.0\.0\.0 lets other machines connect.*ALLOW_WEAK_KEYS=true/;

  it.each([
    ['change-me', 'is a placeholder from the examples'],
    ['change-me-client-key-that-is-long', 'is a placeholder from the examples'],
    ['short-key', 'is only 9 characters long'],
  ])('refuses the client key %s on a non-loopback HOST', (key, why) => {
    const { problems } = attempt({ API_KEY: key, ENDPOINTS: ONE });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^API_KEY \\(auth\\.apiKeys\\): the key ${why}\\. `));
    expect(problems[0]).toMatch(ADVICE);
    expect(problems[0]).not.toContain(key);
  });

  it('names which of several keys, and checks the admin key too', () => {
    const { problems } = attempt({
      API_KEY: `${KEY},tiny`,
      ADMIN_API_KEY: 'change-me-admin',
      ENDPOINTS: ONE,
    });
    expect(problems.map((p) => p.replace(/\. HOST.*/, ''))).toEqual([
      'API_KEY (auth.apiKeys): the 2nd key is only 4 characters long',
      'ADMIN_API_KEY (auth.adminKey): the key is a placeholder from the examples',
    ]);
  });

  it.each(['127.0.0.1', 'localhost', '::1', '[::1]', '127.0.0.2'])(
    'lets weak keys start on the loopback address %s (the demo)',
    (host) => {
      expect(attempt({ API_KEY: 'demo-key', HOST: host, ENDPOINTS: ONE }).problems).toEqual([]);
    },
  );

  it('lets them start elsewhere with ALLOW_WEAK_KEYS=true, loudly', () => {
    const { problems, warnings } = attempt({ API_KEY: 'change-me', ALLOW_WEAK_KEYS: 'true', ENDPOINTS: ONE });
    expect(problems).toEqual([]);
    expect(warnings).toEqual([
      'ALLOW_WEAK_KEYS=true: a placeholder or short key is in use while HOST 0.0.0.0 lets other machines connect',
    ]);
  });

  it('warns about AUTH_DISABLED on a reachable address, and an admin key that is also a client key', () => {
    expect(attempt({ AUTH_DISABLED: 'true', ENDPOINTS: ONE }).warnings).toEqual([
      'AUTH_DISABLED=true while HOST 0.0.0.0 lets other machines connect: anyone who reaches this port can use your endpoints',
    ]);
    expect(attempt({ AUTH_DISABLED: 'true', HOST: '127.0.0.1', ENDPOINTS: ONE }).warnings).toEqual([]);
    expect(attempt({ API_KEY: KEY, ADMIN_API_KEY: KEY, ENDPOINTS: ONE }).warnings).toEqual([
      'ADMIN_API_KEY is also a client key (API_KEY): every client can use the admin routes; give it a key of its own',
    ]);
  });
});
