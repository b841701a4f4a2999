import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { CHILD_TIMEOUT_MS, freePort, spawnGateway, waitForOutput } from '../helpers/child-gateway.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

/** Issue 11: configuration sources, checks and reloads, on the real entry point in its own process. */
const bed = useTestBed();
const ADMIN = 'sk-admin-process-0123456789';

function lines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('--check-config (npm run config:check)', () => {
  it('prints every setting with its source, keys redacted, and the warnings; exits 0 without starting', async () => {
    const up = await bed.upstream('a');
    const dir = await bed.tempDir('gateway-check-');
    await writeFile(
      path.join(dir, '.env'),
      `API_KEY=${CLIENT_KEY}\nENDPOINTS=[{"url":"${up.url}/v1/chat/completions","apiKey":"sk-upstream-secret"}]\nLOG_LEVEL=debug\n`,
    );
    const proc = await spawnGateway(bed, { MAX_ATTEMPTS: '4' }, dir, ['--check-config']);
    const exit = await proc.exit;
    expect(exit.code).toBe(0);
    const out = proc.stdout();
    expect(out).toMatch(/^The configuration is valid\./);
    expect(out).toContain(`.env file:   ${path.join(dir, '.env')}`);
    expect(out).toMatch(/routing\.maxAttempts = 4 +\(env MAX_ATTEMPTS\)/);
    expect(out).toMatch(/logging\.level = "debug" +\(env LOG_LEVEL in \.env\)/);
    expect(out).toMatch(/auth\.apiKeys = \["\[redacted\]"\] +\(env API_KEY in \.env\)/);
    expect(out).toMatch(/server\.port = 3000 +\(default\)/);
    expect(out).toContain('ends in /v1/chat/completions: using');
    expect(out).not.toContain(CLIENT_KEY);
    expect(out).not.toContain('sk-upstream-secret');
    expect(out).not.toContain('listening');
  });

  it('exits 1 with every problem, in words, and never the key; --json for scripts', async () => {
    const dir = await bed.tempDir('gateway-check-');
    const env = { API_KEY: 'change-me-client-key', ENDPOINTS: '[{"url":"https://a.example","weight":-1}]' };
    const proc = await spawnGateway(bed, env, dir, ['--check-config']);
    expect((await proc.exit).code).toBe(1);
    expect(proc.stderr()).toContain('API_KEY (auth.apiKeys): the key is a placeholder from the examples.');
    expect(proc.stderr()).toContain(
      'ENDPOINTS: endpoints[0] (https://a.example).weight: must be at least 0 (got -1)',
    );
    expect(proc.stderr()).not.toContain('change-me-client-key');
    const json = await spawnGateway(bed, env, dir, ['--check-config', '--json']);
    expect((await json.exit).code).toBe(1);
    const report = JSON.parse(json.stdout()) as { valid: boolean; problems: string[] };
    expect(report.valid).toBe(false);
    expect(report.problems).toHaveLength(2);
  });
});

describe('unsafe settings at start', () => {
  it('a placeholder key on 0.0.0.0 stops start-up with the reason; on 127.0.0.1 the gateway starts', async () => {
    const up = await bed.upstream('a');
    const env = {
      API_KEY: 'change-me',
      ENDPOINTS: JSON.stringify([{ url: up.url }]),
      PORT: String(await freePort()),
    };
    const refused = await spawnGateway(bed, env);
    expect((await refused.exit).code).toBe(1);
    expect(refused.stderr()).toMatch(
      /API_KEY \(auth\.apiKeys\): the key is a placeholder.*ALLOW_WEAK_KEYS=true/,
    );
    const loopback = await spawnGateway(bed, { ...env, HOST: '127.0.0.1' });
    await waitForOutput(loopback, 'akash llm gateway listening');
    loopback.proc.kill('SIGTERM');
    expect((await loopback.exit).code).toBe(0);
  });

  it('AUTH_DISABLED on a reachable address starts, with a warning in the log', async () => {
    const up = await bed.upstream('a');
    const proc = await spawnGateway(bed, {
      AUTH_DISABLED: 'true',
      ENDPOINTS: JSON.stringify([{ url: up.url }]),
      PORT: String(await freePort()),
    });
    await waitForOutput(proc, 'akash llm gateway listening');
    const warning = lines(proc.stdout()).find((l) =>
      String(l.msg).startsWith('configuration: AUTH_DISABLED'),
    );
    expect(warning).toMatchObject({ level: 'warn' });
    proc.proc.kill('SIGTERM');
    await proc.exit;
  });
});

describe('configuration sources in a real process', () => {
  it('a .env copied beside a CONFIG_FILE: the replaced file setting is logged at start', async () => {
    const a = await bed.upstream({ name: 'a', models: ['model-a'] });
    const b = await bed.upstream({ name: 'b', models: ['model-b'] });
    const dir = await bed.tempDir('gateway-sources-');
    await writeFile(path.join(dir, 'gateway.yaml'), `endpoints:\n  - { name: from-file, url: "${a.url}" }\n`);
    await writeFile(
      path.join(dir, '.env'),
      `API_KEY=${CLIENT_KEY}\nCONFIG_FILE=gateway.yaml\nENDPOINTS=[{"url":"${b.url}","name":"from-env"}]\n`,
    );
    const proc = await spawnGateway(bed, { PORT: String(await freePort()), HOST: '127.0.0.1' }, dir);
    await waitForOutput(proc, 'akash llm gateway listening');
    const all = lines(proc.stdout());
    expect(all.map((l) => l.msg)).toContain(
      'configuration: ENDPOINTS (.env) replaces endpoints in gateway.yaml',
    );
    expect(all.find((l) => l.msg === 'akash llm gateway listening')).toMatchObject({
      endpoints: [{ name: 'from-env' }],
      configFile: path.join(dir, 'gateway.yaml'),
      envFile: path.join(dir, '.env'),
    });
    proc.proc.kill('SIGTERM');
    await proc.exit;
  });

  it('reloading an environment-only configuration answers 409 and says to restart; SIGHUP logs the same', async () => {
    const up = await bed.upstream('a');
    const port = await freePort();
    const proc = await spawnGateway(bed, {
      API_KEY: CLIENT_KEY,
      ADMIN_API_KEY: ADMIN,
      HOST: '127.0.0.1',
      PORT: String(port),
      ENDPOINTS: JSON.stringify([{ url: up.url, name: 'a' }]),
    });
    await waitForOutput(proc, 'akash llm gateway listening');
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(res.status).toBe(409);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('reload_unavailable');
    expect(body.error.message).toMatch(/environment variables only .* restart it/);
    proc.proc.kill('SIGHUP');
    await waitForOutput(
      proc,
      'configuration not reloaded: This gateway is configured by environment variables only',
    );
    proc.proc.kill('SIGTERM');
    await proc.exit;
  });

  it('a reload reads .env again: SIGHUP and the admin route apply an edited .env', async () => {
    const a = await bed.upstream({ name: 'a', models: ['model-a'] });
    const b = await bed.upstream({ name: 'b', models: ['model-b'] });
    const dir = await bed.tempDir('gateway-dotenv-');
    const port = await freePort();
    const dotenv = (url: string, name: string, attempts: number) =>
      writeFile(
        path.join(dir, '.env'),
        `API_KEY=${CLIENT_KEY}\nADMIN_API_KEY=${ADMIN}\nMAX_ATTEMPTS=${attempts}\nENDPOINTS=[{"url":"${url}","name":"${name}"}]\n`,
      );
    await dotenv(a.url, 'a', 3);
    const proc = await spawnGateway(bed, { PORT: String(port), HOST: '127.0.0.1' }, dir);
    await waitForOutput(proc, 'akash llm gateway listening');
    const base = `http://127.0.0.1:${port}`;
    const models = async () =>
      (
        (await (
          await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } })
        ).json()) as {
          data: Array<{ id: string }>;
        }
      ).data.map((m) => m.id);
    expect(await models()).toEqual(['model-a']);

    await dotenv(b.url, 'b', 3);
    proc.proc.kill('SIGHUP');
    await vi.waitFor(async () => expect(await models()).toEqual(['model-b']), {
      timeout: CHILD_TIMEOUT_MS,
      interval: 20,
    });

    await dotenv(b.url, 'b', 5);
    const res = await fetch(`${base}/api/v1/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      object: 'config.reload',
      added: [],
      removed: [],
      settings: ['routing.maxAttempts'],
      restartNeeded: [],
    });
    const config = (await (
      await fetch(`${base}/api/v1/config`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as {
      settings: { routing: { maxAttempts: unknown } };
    };
    expect(config.settings.routing.maxAttempts).toEqual({
      value: 5,
      source: 'env',
      variable: 'MAX_ATTEMPTS',
      file: '.env',
    });
    proc.proc.kill('SIGTERM');
    await proc.exit;
  });
});
