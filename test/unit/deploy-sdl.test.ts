import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import YAML from 'yaml';
import { SDL, generateManifest, validateSDL, type SDLInput } from '@akashnetwork/chain-sdk';
import { ConfigError, ENV_VARIABLES, loadConfig } from '../../src/config/load-config.js';

const repoRoot = new URL('../../', import.meta.url);
const deployText = readFileSync(new URL('deploy.yml', repoRoot), 'utf8');
const dockerfileText = readFileSync(new URL('Dockerfile', repoRoot), 'utf8');

/** Limits enforced by the Akash SDL schema (chain-sdk sdl-schema.yaml). */
const AKASH_MAX_BODY_SIZE = 104_857_600;
const AKASH_MAX_HTTP_TIMEOUT_MS = 60_000;
const MIB = 1024 * 1024;

/** The environment variables the gateway reads; deployment files may only use these names. */
const CONFIG_ENV_NAMES = new Set(ENV_VARIABLES);
const packageVersion = (
  JSON.parse(readFileSync(new URL('package.json', repoRoot), 'utf8')) as { version: string }
).version;
const IMAGE = 'ghcr.io/akash-network/akash-llm-gateway';

interface StorageVolume {
  name?: string;
  size: string;
}

interface ExposeEntry {
  port: number;
  as?: number;
  to?: { global?: boolean }[];
  http_options?: { max_body_size?: number; read_timeout?: number; send_timeout?: number };
}

interface DeploySdl {
  version: string;
  services: Record<string, { image?: string; env?: string[]; expose?: ExposeEntry[] }>;
  profiles: {
    compute: Record<
      string,
      {
        resources: {
          cpu: { units: number | string };
          memory: { size: string };
          storage: StorageVolume | StorageVolume[];
        };
      }
    >;
    placement: Record<string, { pricing: Record<string, { denom: string; amount: number | string }> }>;
  };
  deployment: Record<string, Record<string, { profile: string; count: number }>>;
}

/** A fresh, mutable copy of deploy.yml for each test. */
function loadSdl(): DeploySdl {
  return YAML.parse(deployText) as DeploySdl;
}

function gateway(sdl: DeploySdl) {
  const service = sdl.services.gateway;
  if (!service) throw new Error('deploy.yml has no "gateway" service');
  return service;
}

function gatewayCompute(sdl: DeploySdl) {
  const compute = sdl.profiles.compute.gateway;
  if (!compute) throw new Error('deploy.yml has no "gateway" compute profile');
  return compute;
}

function globalHttpExpose(sdl: DeploySdl): ExposeEntry {
  const expose = (gateway(sdl).expose ?? []).find((e) => e.as === 80 && e.to?.some((t) => t.global === true));
  if (!expose) throw new Error('deploy.yml does not expose the gateway as port 80 to global');
  return expose;
}

/**
 * The provider's (Go) byte-size parser, ported from pkg.akt.dev/go/sdl units: the suffix is case-sensitive
 * (k, Ki, M, Mi, G, Gi, T, Ti, P, Pi, E, Ei) and memory sizes must use a binary (…i) suffix. The TS chain-sdk
 * lower-cases sizes before parsing them, so it accepts "4gi" that a provider rejects: this port is what
 * catches it.
 */
const PROVIDER_SIZE = /^([-+]?(([1-9]\d*|0)?[.]\d*|[1-9]\d*))(k|[KMGTPE]i?)?$/;

function providerSizeProblem(size: unknown, kind: 'memory' | 'storage'): string | undefined {
  if (typeof size !== 'string')
    return `${kind} size must be a string with a unit, got ${JSON.stringify(size)}`;
  const match = PROVIDER_SIZE.exec(size);
  if (!match)
    return `${kind} size "${size}" is not a valid provider quantity (units are case-sensitive: Mi, Gi)`;
  if (kind === 'memory' && !size.endsWith('i'))
    return `memory size "${size}" must use a binary unit (Mi, Gi)`;
  if (Number.parseFloat(match[1] ?? '') < 0) return `${kind} size "${size}" is negative`;
  return undefined;
}

function providerUnitProblems(sdl: DeploySdl): string[] {
  const problems: string[] = [];
  for (const [name, profile] of Object.entries(sdl.profiles.compute)) {
    const memory = providerSizeProblem(profile.resources.memory.size, 'memory');
    if (memory) problems.push(`${name}: ${memory}`);
    const storage = profile.resources.storage;
    for (const volume of Array.isArray(storage) ? storage : [storage]) {
      const problem = providerSizeProblem(volume.size, 'storage');
      if (problem) problems.push(`${name}: ${problem}`);
    }
  }
  return problems;
}

/** All the ways the SDK can object to an SDL: schema/semantic errors, or the manifest builder throwing. */
function sdkProblems(sdl: DeploySdl): string[] {
  const errors = validateSDL(sdl as unknown as SDLInput, 'mainnet');
  if (errors) return errors.map((e) => e.message);
  try {
    const result = generateManifest(sdl as unknown as SDLInput, 'mainnet');
    if (!result.ok) return result.value.map((e) => e.message);
    SDL.fromString(YAML.stringify(sdl), 'beta3', 'mainnet').manifest(true);
  } catch (error) {
    return [String(error)];
  }
  return [];
}

/** Parses an Express/`bytes` style limit such as "10mb" (1024-based). */
function parseBodyLimit(limit: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(limit.trim());
  if (!match) throw new Error(`unparseable BODY_LIMIT "${limit}"`);
  const power = { b: 0, kb: 1, mb: 2, gb: 3 }[(match[2] ?? 'b').toLowerCase() as 'b' | 'kb' | 'mb' | 'gb'];
  return Math.floor(Number(match[1]) * 1024 ** power);
}

function envEntries(sdl: DeploySdl): Map<string, string> {
  const entries = new Map<string, string>();
  for (const entry of gateway(sdl).env ?? []) {
    const eq = entry.indexOf('=');
    expect(eq, `env entry "${entry}" must be NAME=value`).toBeGreaterThan(0);
    entries.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return entries;
}

describe('deploy.yml (Akash SDL)', () => {
  it('passes the chain-sdk validator for mainnet with no errors', () => {
    // validateSDL returns undefined when valid, an array of ValidationError otherwise.
    expect(validateSDL(loadSdl() as unknown as SDLInput, 'mainnet')).toBeUndefined();
  });

  it('builds the manifest and deployment groups with generateManifest', () => {
    const result = generateManifest(loadSdl() as unknown as SDLInput, 'mainnet');
    if (!result.ok) throw new Error(`generateManifest failed: ${JSON.stringify(result.value)}`);
    const [group] = result.value.groups;
    expect(result.value.groups).toHaveLength(1);
    const service = group?.services.find((s) => s.name === 'gateway');
    expect(service?.image).toBe(`${IMAGE}:${packageVersion}`);
    expect(service?.count).toBe(1);
    const expose = service?.expose[0];
    expect(expose).toMatchObject({ port: 3000, externalPort: 80, global: true });
    expect(expose?.httpOptions?.maxBodySize).toBeGreaterThanOrEqual(10 * MIB);
    expect(expose?.httpOptions?.readTimeout).toBe(AKASH_MAX_HTTP_TIMEOUT_MS);
    expect(expose?.httpOptions?.sendTimeout).toBe(AKASH_MAX_HTTP_TIMEOUT_MS);

    expect(result.value.groupSpecs).toHaveLength(1);
    const [resourceUnit] = result.value.groupSpecs[0]?.resources ?? [];
    expect(resourceUnit?.price?.denom).toBe('uakt');
    expect(resourceUnit?.count).toBe(1);
  });

  it('parses with the SDL class (beta3) and produces a manifest and groups', () => {
    const sdl = SDL.fromString(deployText, 'beta3', 'mainnet');
    // beta3 SDLs produce the v3 manifest shape (what `manifest()` returns for this version).
    const manifest = sdl.v3Manifest(true);
    expect(manifest).toHaveLength(1);
    expect(manifest[0]?.services.map((s) => [s.name, s.image])).toEqual([
      ['gateway', `${IMAGE}:${packageVersion}`],
    ]);
    const groups = sdl.groups() as {
      name: string;
      resources: { price: { denom: string }; count: number }[];
    }[];
    expect(groups).toHaveLength(1);
    expect(groups[0]?.resources[0]).toMatchObject({ price: { denom: 'uakt' }, count: 1 });
  });

  it('is SDL version "2.0"', () => {
    expect(loadSdl().version).toBe('2.0');
  });

  it('exposes container port 3000 as 80 to global through the HTTP ingress', () => {
    const expose = globalHttpExpose(loadSdl());
    expect(expose.port).toBe(3000);
    expect(expose.as).toBe(80);
    expect(expose.to).toContainEqual({ global: true });
  });

  it('raises the ingress body limit and timeouts for LLM traffic, within Akash maxima', () => {
    const options = globalHttpExpose(loadSdl()).http_options ?? {};
    expect(options.max_body_size).toBeGreaterThanOrEqual(10 * MIB);
    expect(options.max_body_size).toBeLessThanOrEqual(AKASH_MAX_BODY_SIZE);
    expect(options.read_timeout).toBe(AKASH_MAX_HTTP_TIMEOUT_MS);
    expect(options.send_timeout).toBe(AKASH_MAX_HTTP_TIMEOUT_MS);
  });

  it('keeps BODY_LIMIT no larger than the ingress max_body_size', () => {
    const sdl = loadSdl();
    const limit = envEntries(sdl).get('BODY_LIMIT') ?? '10mb';
    expect(parseBodyLimit(limit)).toBeLessThanOrEqual(globalHttpExpose(sdl).http_options?.max_body_size ?? 0);
  });

  it('prices every placement in uakt', () => {
    const placements = Object.values(loadSdl().profiles.placement);
    expect(placements.length).toBeGreaterThan(0);
    for (const placement of placements) {
      for (const price of Object.values(placement.pricing)) expect(price.denom).toBe('uakt');
    }
  });

  it('pins the image to a version tag (not latest, not untagged)', () => {
    const image = gateway(loadSdl()).image ?? '';
    const lastSegment = image.slice(image.lastIndexOf('/') + 1);
    const tag = lastSegment.includes(':') ? lastSegment.slice(lastSegment.indexOf(':') + 1) : '';
    expect(tag, `image "${image}" has no tag`).not.toBe('');
    expect(tag).not.toBe('latest');
    expect(tag).toMatch(/^v?\d+\.\d+\.\d+([-+][\w.-]+)?$/);
  });

  it('writes memory and storage sizes with upper-case binary units that the provider accepts', () => {
    const sdl = loadSdl();
    const compute = gatewayCompute(sdl);
    expect(compute.resources.memory.size).toMatch(/^\d+(\.\d+)?(Mi|Gi)$/);
    const storage = compute.resources.storage;
    for (const volume of Array.isArray(storage) ? storage : [storage]) {
      expect(volume.size).toMatch(/^\d+(\.\d+)?(Mi|Gi)$/);
    }
    expect(providerUnitProblems(sdl)).toEqual([]);
  });

  it('only sets environment variables from the configuration contract', () => {
    const names = [...envEntries(loadSdl()).keys()];
    expect(names).toEqual(
      expect.arrayContaining(['API_KEY', 'ADMIN_API_KEY', 'ENDPOINTS', 'LOG_LEVEL', 'BODY_LIMIT']),
    );
    for (const name of names) expect(CONFIG_ENV_NAMES, `unknown env var ${name}`).toContain(name);
  });

  it('gives ENDPOINTS as one-line JSON with url, apiKey, priority and weight', () => {
    const raw = envEntries(loadSdl()).get('ENDPOINTS') ?? '';
    expect(raw).not.toContain('\n');
    const endpoints = JSON.parse(raw) as unknown;
    expect(Array.isArray(endpoints)).toBe(true);
    expect((endpoints as unknown[]).length).toBeGreaterThanOrEqual(2);
    for (const endpoint of endpoints as Record<string, unknown>[]) {
      expect(endpoint.url).toMatch(/^https:\/\/[^/]+$/);
      expect(typeof endpoint.apiKey).toBe('string');
      expect(Number.isInteger(endpoint.priority)).toBe(true);
      expect(endpoint.weight).toBeGreaterThanOrEqual(0);
    }
  });

  it('keeps placeholders the gateway refuses: an unedited file cannot go live', () => {
    const env = Object.fromEntries(envEntries(loadSdl()));
    let error: unknown;
    try {
      loadConfig({ env });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toMatch(/API_KEY \(auth\.apiKeys\): the key is a placeholder/);
    expect(problems).toMatch(/ADMIN_API_KEY \(auth\.adminKey\): the key is a placeholder/);
    expect((error as ConfigError).problems).toHaveLength(2);
  });

  it('with its keys set, loads with timeouts that fail over inside the ingress window', () => {
    const sdl = loadSdl();
    const env = {
      ...Object.fromEntries(envEntries(sdl)),
      API_KEY: 'sk-client-5f0c2a9e8b7d6c5f4e3d2c1b',
      ADMIN_API_KEY: 'sk-admin-0a1b2c3d4e5f6a7b8c9d0e1f',
    };
    const config = loadConfig({ env });
    const ingressMs = globalHttpExpose(sdl).http_options?.read_timeout ?? 0;
    const { timeouts } = config.routing;
    // A JSON answer sends nothing until complete: it must end, failover included, before the ingress cuts it.
    expect(timeouts.jsonTotalMs).toBeLessThan(ingressMs);
    expect(timeouts.firstByteMs * 2).toBeLessThanOrEqual(timeouts.jsonTotalMs ?? Infinity);
    // Streams: heartbeats while waiting, and a stall is ended by the gateway before the ingress does it.
    expect(config.server.heartbeatIntervalMs).toBeLessThan(ingressMs);
    expect(timeouts.idleMs).toBeLessThan(ingressMs);
    expect(timeouts.totalMs).toBeGreaterThan(ingressMs);
  });

  describe('the checks catch broken SDLs', () => {
    it('rejects lower-case memory units such as "4gi" (provider rule; the SDK lower-cases and accepts them)', () => {
      const sdl = loadSdl();
      gatewayCompute(sdl).resources.memory.size = '4gi';
      expect(providerUnitProblems(sdl)).toEqual([expect.stringContaining('"4gi"')]);
    });

    it('rejects other sizes the provider refuses: lower-case storage, decimal memory units, junk', () => {
      for (const [kind, size] of [
        ['storage', '1gi'],
        ['memory', '512M'],
        ['memory', '512 Mi'],
        ['memory', '-1Gi'],
      ] as const) {
        const sdl = loadSdl();
        if (kind === 'memory') gatewayCompute(sdl).resources.memory.size = size;
        else gatewayCompute(sdl).resources.storage = { size };
        expect(providerUnitProblems(sdl), `${kind} ${size}`).toHaveLength(1);
      }
    });

    it('has the SDK reject a size it cannot parse at all', () => {
      const sdl = loadSdl();
      gatewayCompute(sdl).resources.memory.size = '512 Mi';
      expect(validateSDL(sdl as unknown as SDLInput, 'mainnet')).toBeUndefined(); // the schema only wants a string
      expect(() => generateManifest(sdl as unknown as SDLInput, 'mainnet')).toThrow(/Invalid size string/);
      expect(() => SDL.fromString(YAML.stringify(sdl), 'beta3', 'mainnet').manifest(true)).toThrow(
        /Invalid size string/,
      );
    });

    it('has the SDK reject a service without an image', () => {
      const sdl = loadSdl();
      delete gateway(sdl).image;
      const errors = validateSDL(sdl as unknown as SDLInput, 'mainnet');
      expect(errors).toEqual([
        expect.objectContaining({ keyword: 'required', params: { missingProperty: 'image' } }),
      ]);
      expect(() => SDL.fromString(YAML.stringify(sdl), 'beta3', 'mainnet')).toThrow(/image/);
    });

    it('has the SDK reject http_options above the Akash maxima', () => {
      const sdl = loadSdl();
      const options = globalHttpExpose(sdl).http_options ?? {};
      options.max_body_size = AKASH_MAX_BODY_SIZE + 1;
      options.read_timeout = AKASH_MAX_HTTP_TIMEOUT_MS + 1;
      const errors = validateSDL(sdl as unknown as SDLInput, 'mainnet') ?? [];
      expect(errors.map((e) => e.instancePath)).toEqual(
        expect.arrayContaining([
          '/services/gateway/expose/0/http_options/max_body_size',
          '/services/gateway/expose/0/http_options/read_timeout',
        ]),
      );
    });

    it('has the SDK reject a deployment whose placement has no pricing for the profile', () => {
      const sdl = loadSdl();
      const placement = sdl.profiles.placement.dcloud;
      if (placement) placement.pricing = {};
      expect(sdkProblems(sdl)).toEqual([expect.stringContaining('pricing')]);
    });

    it('accepts the unmodified file through every SDK path', () => {
      expect(sdkProblems(loadSdl())).toEqual([]);
    });
  });
});

describe('Dockerfile', () => {
  // Join continuation lines and drop comments so each instruction is one line.
  const instructions = dockerfileText
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const fromIndexes = instructions.flatMap((line, i) => (/^FROM\s/i.test(line) ? [i] : []));
  const finalStage = instructions.slice(fromIndexes.at(-1) ?? 0);

  it('is multi-stage, on the current Node LTS line (26), slim', () => {
    expect(fromIndexes.length).toBeGreaterThanOrEqual(2);
    const argDefaults = new Map(
      instructions.flatMap((line) => {
        const m = /^ARG\s+(\w+)=(\S+)/i.exec(line);
        return m ? [[m[1] ?? '', m[2] ?? ''] as const] : [];
      }),
    );
    for (const i of fromIndexes) {
      const image = (instructions[i] ?? '').split(/\s+/)[1] ?? '';
      const resolved = image.replace(
        /\$\{(\w+)\}|\$(\w+)/g,
        (_, a?: string, b?: string) => argDefaults.get(a ?? b ?? '') ?? '',
      );
      expect(resolved).toMatch(/^node:26(\.\d+){0,2}-(trixie-slim|bookworm-slim|alpine[\d.]*)$/);
    }
  });

  it('builds with npm ci and npm run build, and ships only production dependencies', () => {
    const buildStages = instructions.slice(0, fromIndexes.at(-1));
    expect(buildStages.some((l) => /^RUN\s.*npm ci\b/.test(l))).toBe(true);
    expect(buildStages.some((l) => /^RUN\s.*npm run build\b/.test(l))).toBe(true);
    // Production dependencies: installed in the final stage, or copied from a stage that installed them.
    const prodInstall = /^RUN\s.*npm (ci|prune)\b.*(--omit[= ]dev|--production)/;
    const copiedModules = finalStage.find((l) => /^COPY\s.*--from=(\S+).*\bnode_modules\b/.test(l));
    if (copiedModules) {
      const stage = /--from=(\S+)/.exec(copiedModules)![1]!;
      const start = instructions.findIndex((l) => new RegExp(`^FROM\\s.*\\sAS\\s+${stage}$`, 'i').test(l));
      const end = fromIndexes.find((i) => i > start) ?? instructions.length;
      expect(instructions.slice(start, end).some((l) => prodInstall.test(l))).toBe(true);
    } else expect(finalStage.some((l) => prodInstall.test(l))).toBe(true);
    expect(finalStage.some((l) => /^COPY\s.*--from=\S+.*\bdist\b/.test(l))).toBe(true);
  });

  it('builds better-sqlite3 (the embedded key store): its install script is not skipped', () => {
    const installs = instructions.filter((l) => /^RUN\s.*npm ci\b.*--omit[= ]dev/.test(l));
    expect(installs.length).toBeGreaterThan(0);
    for (const l of installs) expect(l).not.toMatch(/--ignore-scripts/);
    const allowed = (
      JSON.parse(readFileSync(new URL('package.json', repoRoot), 'utf8')) as {
        allowScripts?: Record<string, boolean>;
      }
    ).allowScripts;
    expect(allowed?.['better-sqlite3']).toBe(true);
    // The SQLite file's directory is writable by the node user.
    expect(finalStage.some((l) => /^RUN\s.*mkdir -p\b.*\bdata\b.*chown node:node\b.*\bdata\b/.test(l))).toBe(
      true,
    );
  });

  it('runs as the non-root node user in the final stage', () => {
    const users = finalStage.filter((l) => /^USER\s/i.test(l));
    expect(users.at(-1)).toMatch(/^USER\s+node$/);
  });

  it('sets production env, exposes 3000 and health-checks /health with node itself', () => {
    expect(finalStage.some((l) => /^ENV\s.*NODE_ENV=production/.test(l))).toBe(true);
    expect(finalStage.some((l) => /^ENV\s.*PORT=3000/.test(l))).toBe(true);
    expect(finalStage).toContain('EXPOSE 3000');
    const healthcheck = finalStage.find((l) => /^HEALTHCHECK\s/.test(l)) ?? '';
    expect(healthcheck).toMatch(/CMD\s+node\s/);
    expect(healthcheck).toMatch(/\/health(?![\w/-])/);
    expect(healthcheck).not.toMatch(/\bcurl\b|\bwget\b/);
  });

  it('starts dist/main.js in exec form so SIGTERM reaches node', () => {
    const cmd = finalStage.filter((l) => /^CMD\s/.test(l)).at(-1) ?? '';
    expect(JSON.parse(cmd.replace(/^CMD\s+/, ''))).toEqual(['node', 'dist/main.js']);
    expect(finalStage.some((l) => /^ENTRYPOINT\s/.test(l))).toBe(false);
  });
});

describe('one image name everywhere', () => {
  const workflow = YAML.parse(readFileSync(new URL('.github/workflows/release.yml', repoRoot), 'utf8')) as {
    on: { push: { tags: string[] } };
    env: { IMAGE_NAME: string };
    jobs: Record<
      string,
      { needs?: string; steps: Array<{ uses?: string; run?: string; with?: Record<string, unknown> }> }
    >;
  };
  const readme = readFileSync(new URL('README.md', repoRoot), 'utf8');

  it('the release workflow builds amd64 and arm64 on a version tag, after the checks, for ghcr.io', () => {
    expect(workflow.on.push.tags).toEqual(['v*.*.*']);
    const image = workflow.jobs.image!;
    expect(image.needs).toBe('check');
    const build = image.steps.find((s) => s.uses?.startsWith('docker/build-push-action'));
    expect(build?.with).toMatchObject({ platforms: 'linux/amd64,linux/arm64', push: true });
    const login = image.steps.find((s) => s.uses?.startsWith('docker/login-action'));
    expect(login?.with?.registry).toBe('ghcr.io');
    const name = image.steps.find((s) => s.run?.includes('IMAGE_NAME'));
    expect(name?.run).toContain('ghcr.io/${GITHUB_REPOSITORY_OWNER,,}/${IMAGE_NAME}');
    expect(`ghcr.io/akash-network/${workflow.env.IMAGE_NAME}`).toBe(IMAGE);
    // The version tag must be package.json's version, so deploy.yml's tag is the one published.
    expect(workflow.jobs.check!.steps.some((s) => s.run?.includes("require('./package.json').version"))).toBe(
      true,
    );
  });

  it('deploy.yml, the README and the Dockerfile name the image the workflow publishes', () => {
    expect(gateway(loadSdl()).image).toBe(`${IMAGE}:${packageVersion}`);
    expect(readme).toContain(`${IMAGE}:${packageVersion}`);
    expect(dockerfileText).toContain(IMAGE);
    const more = ['deploy-replicas.yml', 'docker-compose.yml'].map((f) =>
      readFileSync(new URL(f, repoRoot), 'utf8'),
    );
    for (const text of [readme, dockerfileText, deployText, ...more]) {
      // Any registry path of the image is this one, and no bare local tag is shown as the image.
      for (const name of text.match(/[\w.-]+\/[\w.-]+\/akash-llm-gateway/g) ?? []) expect(name).toBe(IMAGE);
      expect(text.match(/(?<![\w./-])akash-llm-gateway:\S+/g) ?? []).toEqual([]);
    }
  });
});

describe('deploy-replicas.yml (Akash SDL: replicas on one Redis and one PostgreSQL)', () => {
  const text = readFileSync(new URL('deploy-replicas.yml', repoRoot), 'utf8');
  const load = () => YAML.parse(text) as DeploySdl;

  it('passes the chain-sdk validator and manifest builders, with sizes providers accept', () => {
    expect(sdkProblems(load())).toEqual([]);
    expect(providerUnitProblems(load())).toEqual([]);
  });

  it('runs several gateway replicas; Redis and PostgreSQL are reachable by the gateway only', () => {
    const sdl = load();
    expect(sdl.deployment.gateway!.dcloud!.count).toBeGreaterThan(1);
    for (const name of ['redis', 'postgres']) {
      const expose = sdl.services[name]!.expose ?? [];
      expect(expose.length).toBeGreaterThan(0);
      for (const e of expose) for (const to of e.to ?? []) expect(to).toEqual({ service: 'gateway' });
    }
    expect(sdl.services.gateway!.image).toBe(`${IMAGE}:${packageVersion}`);
  });

  it('gives the gateway only variables it reads; with its secrets set it loads with Redis and PostgreSQL', () => {
    const env = Object.fromEntries(envEntries(load()));
    for (const name of Object.keys(env)) expect(CONFIG_ENV_NAMES, name).toContain(name);
    expect(() => loadConfig({ env })).toThrow(ConfigError);
    const config = loadConfig({
      env: {
        ...env,
        API_KEY: 'sk-client-5f0c2a9e8b7d6c5f4e3d2c1b',
        ADMIN_API_KEY: 'sk-admin-0a1b2c3d4e5f6a7b8c9d0e1f',
      },
    });
    expect(config.database.url).toMatch(/^postgres:\/\/gateway:[^@]+@postgres:5432\/gateway$/);
    expect(config.redis.url).toBe('redis://redis:6379');
    // The database password is the same in both services.
    const password = /:\/\/gateway:([^@]+)@/.exec(config.database.url)![1];
    expect(load().services.postgres!.env).toContain(`POSTGRES_PASSWORD=${password}`);
  });
});

describe('docker-compose.yml (three replicas, Redis, PostgreSQL on one machine)', () => {
  const compose = YAML.parse(readFileSync(new URL('docker-compose.yml', repoRoot), 'utf8'), {
    merge: true,
  }) as {
    services: Record<string, { environment?: Record<string, string>; image?: string; ports?: string[] }>;
  };

  it('runs three gateway replicas on one Redis and one PostgreSQL, with variables the gateway reads', () => {
    const gateways = Object.entries(compose.services).filter(([name]) => name.startsWith('gateway'));
    expect(gateways).toHaveLength(3);
    const ports = new Set<string>();
    for (const [, service] of gateways) {
      expect(service.image).toBe(`${IMAGE}:${packageVersion}`);
      for (const name of Object.keys(service.environment ?? {}))
        expect(CONFIG_ENV_NAMES, name).toContain(name);
      expect(service.environment?.REDIS_URL).toBe('redis://redis:6379');
      expect(service.environment?.DATABASE_URL).toMatch(
        /^postgres:\/\/gateway:[^@]+@postgres:5432\/gateway$/,
      );
      for (const p of service.ports ?? []) ports.add(p);
    }
    expect(ports.size).toBe(3);
    expect(compose.services.redis).toBeDefined();
    expect(compose.services.postgres).toBeDefined();
  });
});
