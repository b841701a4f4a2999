import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type Env } from '../../src/config/load-config.js';
import { createLogger, LogFileError } from '../../src/observability/logger.js';

const base: Env = { API_KEY: 'k', HOST: '127.0.0.1', ENDPOINTS: '[{"url":"http://127.0.0.1:8000"}]' };

function problems(env: Env, file?: string): string[] {
  try {
    loadConfig({ env: { ...base, ...env }, readFile: () => file ?? '' });
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('configuration errors say what is wrong', () => {
  it.each([
    [{ PORT: 'abc' }, /PORT \(server\.port\): must be a number \(got text\)/],
    [{ PORT: '3.5' }, /PORT \(server\.port\): must be a whole number \(got 3\.5\)/],
    [{ PORT: '70000' }, /PORT \(server\.port\): must be at most 65535 \(got 70000\)/],
    [{ WORKERS: '0' }, /WORKERS \(server\.workers\): must be at least 1 \(got 0\)/],
    [
      { LOG_LEVEL: 'verbose' },
      /LOG_LEVEL \(logging\.level\): must be one of fatal, error, .* \(got 'verbose'\)/,
    ],
    [{ BODY_LIMIT: 'lots' }, /BODY_LIMIT \(server\.bodyLimit\): 'lots' is not a size/],
    [{ FILE_LOGGING: 'maybe' }, /FILE_LOGGING \(logging\.file\): must be true or false/],
    [{ CONNECT_TIMEOUT_MS: 'abc' }, /CONNECT_TIMEOUT_MS \(routing\.timeouts\.connectMs\): must be a number/],
    [
      { ENDPOINTS: '[{"url":"http://x","priority":1.5}]' },
      /endpoints\[0\] \(http:\/\/x\)\.priority: must be a whole number \(got 1\.5\)/,
    ],
    [{ ENDPOINTS: '[{"url":"http://x","maxConcurrent":0}]' }, /maxConcurrent: must be greater than 0/],
    [{ ENDPOINTS: '[{"url":5}]' }, /endpoints\[0\]\.url: must be text \(got the number 5\)/],
    [{ ENDPOINTS: '["http://x"]' }, /endpoints\[0\]: must be a mapping of settings \(got text\)/],
    [{ ENDPOINTS: '{"url":"http://x"}' }, /ENDPOINTS: endpoints: must be a list \(got a mapping\)/],
  ])('%o', (env, expected) => {
    const found = problems(env);
    expect(found.join('\n')).toMatch(expected);
    expect(found.join('\n')).not.toMatch(/is required/);
  });

  it('reports a missing required field as required', () => {
    expect(problems({ ENDPOINTS: '[{"apiKey":"x"}]' }).join('\n')).toMatch(
      /url: (is required|url is required)/,
    );
  });

  it('rejects credentials in an endpoint URL without echoing them', () => {
    const found = problems({ ENDPOINTS: '[{"url":"http://user:sk-secret-in-url@gpu.example"}]' }).join('\n');
    expect(found).toMatch(/must not contain credentials: put the key in apiKey/);
    expect(found).not.toContain('sk-secret-in-url');
  });

  it('checks across fields: an endpoint name used twice, an alias that lists itself', () => {
    const found = problems(
      {
        ENDPOINTS: '[{"url":"http://a:1","name":"gpu"},{"url":"http://b:1","name":"gpu"}]',
        CONFIG_FILE: 'g.yaml',
      },
      'aliases: { fast: [fast, other] }\n',
    ).join('\n');
    expect(found).toMatch(/ENDPOINTS: endpoints\[1\] \(gpu\)\.name: 'gpu' is already used by endpoints\[0\]/);
    expect(found).toMatch(/aliases\.fast: an alias must not list itself/);
  });

  it('does not echo the password of an endpoint URL that does not parse', () => {
    const found = problems({ ENDPOINTS: '[{"url":"https://user:sk-secret-pw@gpu.example:99999999"}]' }).join(
      '\n',
    );
    expect(found).toMatch(/is not a valid URL/);
    expect(found).not.toContain('sk-secret-pw');
  });

  it.each([
    ['HEARTBEAT_INTERVAL_MS', '3000000000'],
    ['SHUTDOWN_GRACE_MS', '2147483648'],
    ['IDLE_TIMEOUT_MS', '1e12'],
    ['HEDGE_DELAY_MS', '99999999999'],
    ['CLIENT_BODY_TIMEOUT_MS', '4000000000'],
  ])('a duration a timer cannot wait (%s=%s) stops start-up, naming the setting', (name, value) => {
    expect(problems({ [name]: value }).join('\n')).toMatch(new RegExp(`${name}.*(2147483647|at most)`));
  });

  it('hints at quoting when an unquoted ${VAR} breaks flow-style YAML, without follow-up noise', () => {
    const found = problems(
      { CONFIG_FILE: 'gateway.yaml', ENDPOINTS: '', API_KEY: '' },
      'server: { port: ${GW_PORT:-3102} }\n',
    );
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/CONFIG_FILE gateway\.yaml: could not be parsed/);
    expect(found[0]).toMatch(/put values that use \$\{VAR\} in quotes/);
  });

  it('a quoted ${VAR:-default} in flow style works', () => {
    const c = loadConfig({
      env: { ...base, CONFIG_FILE: 'g.yaml' },
      readFile: () => 'server: { port: "${GW_PORT:-3102}" }\n',
    });
    expect(c.server.port).toBe(3102);
  });
});

describe('LOG_FILE that cannot be written', () => {
  it('a log directory that cannot be made (under /proc) stops start-up at once instead of hanging', () => {
    expect(() => createLogger({ level: 'info', file: { path: '/proc/nope/gateway.log' } })).toThrow(
      /LOG_FILE \/proc\/nope\/gateway\.log: cannot be written/,
    );
  });

  it('stops start-up with a clear message instead of crashing later', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'gateway-log-'));
    try {
      expect(() => createLogger({ level: 'info', file: { path: dir } })).toThrow(LogFileError);
      expect(() => createLogger({ level: 'info', file: { path: dir } })).toThrow(
        /LOG_FILE .* cannot be written \(EISDIR\)/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
