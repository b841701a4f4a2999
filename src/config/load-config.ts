import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import dotenv from 'dotenv';
import type { parse as ParseYaml } from 'yaml';
import { ConfigError, describeFileError, describeIssue } from './config-problems.js';
import { configSchema } from './schema.js';
import type { GatewayConfig } from './types.js';

/**
 * The YAML parser is loaded only when a CONFIG_FILE is read: a gateway configured from the
 * environment keeps its code (and the heap it takes for good) out of the process.
 */
function parseYaml(text: string): unknown {
  const yaml = createRequire(import.meta.url)('yaml') as { parse: typeof ParseYaml };
  return yaml.parse(text);
}

export { ConfigError };

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Environment variable -> path in the config structure. These names are the public contract of
 * the configuration table of the README; the environment overrides the config file.
 */
const ENV_PATHS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['PORT', ['server', 'port']],
  ['HOST', ['server', 'host']],
  ['BODY_LIMIT', ['server', 'bodyLimit']],
  ['SHUTDOWN_GRACE_MS', ['server', 'shutdownGraceMs']],
  ['WORKERS', ['server', 'workers']],
  ['HEARTBEAT_INTERVAL_MS', ['server', 'heartbeatIntervalMs']],
  ['CLIENT_BODY_TIMEOUT_MS', ['server', 'clientBodyTimeoutMs']],
  ['ADMIN_API_KEY', ['auth', 'adminKey']],
  ['AUTH_DISABLED', ['auth', 'disabled']],
  ['FILE_LOGGING', ['logging', 'file']],
  ['LOG_FILE', ['logging', 'filePath']],
  ['LOG_LEVEL', ['logging', 'level']],
  ['MODELS_OWNED_BY', ['models', 'ownedBy']],
  ['DISCOVERY_INTERVAL_MS', ['models', 'discoveryIntervalMs']],
  ['DISCOVERY_TIMEOUT_MS', ['models', 'discoveryTimeoutMs']],
  ['HEALTH_PROBE_INTERVAL_MS', ['health', 'probeIntervalMs']],
  ['ROUTING_STRATEGY', ['routing', 'strategy']],
  ['MAX_ATTEMPTS', ['routing', 'maxAttempts']],
  ['CONNECT_TIMEOUT_MS', ['routing', 'timeouts', 'connectMs']],
  ['FIRST_BYTE_TIMEOUT_MS', ['routing', 'timeouts', 'firstByteMs']],
  ['IDLE_TIMEOUT_MS', ['routing', 'timeouts', 'idleMs']],
  ['REQUEST_TIMEOUT_MS', ['routing', 'timeouts', 'totalMs']],
  ['CONTINUATION', ['routing', 'continuation']],
  ['CONTINUATION_MAX_BYTES', ['routing', 'continuationMaxBytes']],
  ['CONTINUATION_BUDGET_BYTES', ['routing', 'continuationBudgetBytes']],
  ['HEDGE_DELAY_MS', ['routing', 'hedge', 'delayMs']],
  ['AFFINITY_HEADER', ['routing', 'affinity', 'header']],
  ['AFFINITY_USER_FIELD', ['routing', 'affinity', 'userField']],
  ['AFFINITY_LOAD_FACTOR', ['routing', 'affinity', 'loadFactor']],
  ['MIN_BYTES_PER_SECOND', ['routing', 'timeouts', 'minBytesPerSecond']],
  ['THROUGHPUT_WINDOW_MS', ['routing', 'timeouts', 'throughputWindowMs']],
];

/** Every environment variable the gateway reads. */
export const ENV_VARIABLES: readonly string[] = [
  ...ENV_PATHS.map(([name]) => name),
  'API_KEY',
  'PROXY_API_KEY',
  'ENDPOINTS',
  'CONFIG_FILE',
  'HEDGE_MODELS',
  'FORWARD_HEADERS',
];

export interface LoadConfigOptions {
  env: Env;
  /** Reads the CONFIG_FILE; injectable for tests. */
  readFile?: (file: string) => string;
  /** Directory that a relative CONFIG_FILE is resolved against. */
  cwd?: string;
}

/**
 * Builds the frozen gateway configuration from environment variables and an optional config file.
 * Throws ConfigError listing every problem found.
 */
export function loadConfig(options: LoadConfigOptions): GatewayConfig {
  const { env } = options;
  const problems: string[] = [];
  const raw: Record<string, unknown> = {};
  const fromEnv = new Map<string, string>();

  const configFile = nonBlank(env.CONFIG_FILE);
  // A source that failed to parse would only add follow-up complaints (no endpoints, no key).
  let fileFailed = false;
  let endpointsFailed = false;
  const file = configFile ? path.resolve(options.cwd ?? process.cwd(), configFile) : undefined;
  if (configFile && file) {
    try {
      const text = (options.readFile ?? ((f: string) => readFileSync(f, 'utf8')))(file);
      const parsed: unknown = text.trim() === '' ? {} : parseYaml(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        problems.push(`CONFIG_FILE ${configFile}: expected a mapping of sections (server, endpoints, ...)`);
      } else {
        Object.assign(raw, interpolate(parsed, env));
      }
    } catch (err) {
      problems.push(`CONFIG_FILE ${configFile}: ${describeFileError(err)}`);
      fileFailed = true;
    }
  }

  for (const [name, keyPath] of ENV_PATHS) {
    const value = nonBlank(env[name]);
    if (value === undefined) continue;
    setPath(raw, keyPath, value);
    fromEnv.set(keyPath.join('.'), name);
  }

  const apiKeyVar = nonBlank(env.API_KEY) !== undefined ? 'API_KEY' : 'PROXY_API_KEY';
  const apiKeys = nonBlank(env.API_KEY) ?? nonBlank(env.PROXY_API_KEY);
  if (apiKeys !== undefined) {
    setPath(raw, ['auth', 'apiKeys'], apiKeys.split(','));
    fromEnv.set('auth.apiKeys', apiKeyVar);
  }

  const hedgeModels = nonBlank(env.HEDGE_MODELS);
  if (hedgeModels !== undefined) {
    setPath(
      raw,
      ['routing', 'hedge', 'models'],
      hedgeModels
        .split(',')
        .map((m) => m.trim())
        .filter(Boolean),
    );
    fromEnv.set('routing.hedge.models', 'HEDGE_MODELS');
  }

  const forwardHeaders = nonBlank(env.FORWARD_HEADERS);
  if (forwardHeaders !== undefined) {
    setPath(
      raw,
      ['routing', 'forwardHeaders'],
      forwardHeaders
        .split(',')
        .map((h) => h.trim())
        .filter(Boolean),
    );
    fromEnv.set('routing.forwardHeaders', 'FORWARD_HEADERS');
  }

  const endpointsJson = nonBlank(env.ENDPOINTS);
  if (endpointsJson !== undefined) {
    try {
      raw.endpoints = JSON.parse(endpointsJson) as unknown;
      fromEnv.set('endpoints', 'ENDPOINTS');
    } catch (err) {
      // V8's message quotes the text around the error, which may be an unquoted key: keep only the position.
      const at = /position (\d+)/.exec((err as Error).message)?.[1];
      problems.push(
        `ENDPOINTS: not valid JSON${at === undefined ? '' : ` (syntax error at character ${at})`}; ` +
          'expected a one-line array such as ' +
          `[{"url":"https://gpu-a.example","apiKey":"...","priority":1,"weight":1}]`,
      );
      delete raw.endpoints;
      endpointsFailed = true;
    }
  }

  // reportInput: tells a missing value ('is required') from a wrong one.
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!fileFailed && !hasClientKeyOrAuthDisabled(raw)) problems.push(MISSING_API_KEY);
  if (!result.success) {
    problems.push(...result.error.issues.map((issue) => describeIssue(issue, raw, fromEnv)));
    throw new ConfigError(problems);
  }
  if (result.data.endpoints.length === 0 && !fileFailed && !endpointsFailed) problems.push(NO_ENDPOINTS);
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze({ ...result.data, configFile: file });
}

/**
 * Reads `.env` (without overriding variables already set) and then the environment. The only place in
 * the gateway that touches process.env.
 */
export function loadConfigFromProcess(layers: { defaults?: Env; overrides?: Env } = {}): GatewayConfig {
  dotenv.config({ quiet: true });
  return loadConfig({ env: { ...layers.defaults, ...definedOnly(process.env), ...layers.overrides } });
}

function definedOnly(env: Env): Env {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
}

/** Replaces `${VAR}` and `${VAR:-default}` in every string of the parsed file. */
function interpolate(value: unknown, env: Env): unknown {
  if (typeof value === 'string') {
    return value.replace(
      /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
      (_m, name: string, fallback?: string) => {
        const v = env[name];
        return v !== undefined && v !== '' ? v : (fallback ?? '');
      },
    );
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)]));
  }
  return value;
}

function setPath(target: Record<string, unknown>, keyPath: readonly string[], value: unknown): void {
  let node = target;
  keyPath.forEach((key, i) => {
    if (i === keyPath.length - 1) {
      node[key] = value;
      return;
    }
    const next = node[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  });
}

function nonBlank(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

const NO_ENDPOINTS =
  'ENDPOINTS: no upstream endpoint is configured. Set ENDPOINTS (a one-line JSON array) or CONFIG_FILE, ' +
  'or run `npm run demo` to try the gateway with local demo upstreams';

const MISSING_API_KEY =
  'API_KEY: no client API key is set. Set API_KEY (comma-separated for several keys) or, only for a ' +
  'private network, AUTH_DISABLED=true';

/** The API-key check on the raw input, so that it is reported even when the schema found other problems. */
function hasClientKeyOrAuthDisabled(raw: Record<string, unknown>): boolean {
  const { apiKeys, disabled } = (raw.auth ?? {}) as { apiKeys?: unknown; disabled?: unknown };
  if (disabled === true) return true;
  if (typeof disabled === 'string' && ['true', '1', 'yes', 'on'].includes(disabled.trim().toLowerCase()))
    return true;
  return Array.isArray(apiKeys) && apiKeys.some((k) => typeof k === 'string' && k.trim() !== '');
}
