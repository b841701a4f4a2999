import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import dotenv from 'dotenv';
import type { parse as ParseYaml } from 'yaml';
import { ConfigError, describeFileError, describeIssue, formatPath } from './config-problems.js';
import { configWarnings } from './config-warnings.js';
import { configSchema, keyStrengthIssuesOf } from './schema.js';
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
  ['TRUST_PROXY', ['server', 'trustProxy']],
  ['DATABASE_URL', ['database', 'url']],
  ['REDIS_URL', ['redis', 'url']],
  ['REDIS_PREFIX', ['redis', 'prefix']],
  ['USAGE_RETENTION_DAYS', ['usage', 'retentionDays']],
  ['METRICS_AUTH', ['metrics', 'auth']],
  ['OTEL_EXPORTER_OTLP_ENDPOINT', ['tracing', 'endpoint']],
  ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', ['tracing', 'tracesEndpoint']],
  ['OTEL_EXPORTER_OTLP_PROTOCOL', ['tracing', 'protocol']],
  ['OTEL_SERVICE_NAME', ['tracing', 'serviceName']],
  ['CACHE', ['cache', 'mode']],
  ['CACHE_TTL', ['cache', 'ttl']],
  ['CACHE_MAX_BYTES', ['cache', 'maxBytes']],
  ['CACHE_SCOPE', ['cache', 'scope']],
  ['ADMIN_API_KEY', ['auth', 'adminKey']],
  ['AUTH_DISABLED', ['auth', 'disabled']],
  ['ALLOW_WEAK_KEYS', ['auth', 'allowWeakKeys']],
  ['JWT_SECRET', ['auth', 'jwt', 'secret']],
  ['JWT_PUBLIC_KEY', ['auth', 'jwt', 'publicKey']],
  ['JWT_ISSUER', ['auth', 'jwt', 'issuer']],
  ['JWT_AUDIENCE', ['auth', 'jwt', 'audience']],
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
  ['JSON_REQUEST_TIMEOUT_MS', ['routing', 'timeouts', 'jsonTotalMs']],
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

/** Comma-separated lists. */
const LIST_PATHS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['HEDGE_MODELS', ['routing', 'hedge', 'models']],
  ['FORWARD_HEADERS', ['routing', 'forwardHeaders']],
  ['CORS_ORIGINS', ['server', 'cors', 'origins']],
];

/** Every environment variable the gateway reads. */
export const ENV_VARIABLES: readonly string[] = [
  ...ENV_PATHS.map(([name]) => name),
  ...LIST_PATHS.map(([name]) => name),
  'API_KEY',
  'PROXY_API_KEY',
  'ENDPOINTS',
  'CONFIG_FILE',
];

export interface LoadConfigOptions {
  env: Env;
  /** Reads the CONFIG_FILE; injectable for tests. */
  readFile?: (file: string) => string;
  /** Directory that a relative CONFIG_FILE is resolved against. */
  cwd?: string;
  /** The `.env` file the environment was completed from, and the names it set. */
  envFile?: { path: string; names: ReadonlySet<string> };
}

/** Where a setting's value came from. */
export interface SettingSource {
  source: 'default' | 'env' | 'file';
  /** The environment variable that set it. */
  variable?: string;
  /** The file that set it: the config file, or `.env` for a variable read from it. */
  file?: string;
}

/** What loading found besides the configuration itself: its files, warnings and each value's source. */
export interface ConfigOrigin {
  /** Absolute path of CONFIG_FILE, when one was read. */
  readonly configFile: string | undefined;
  /** Absolute path of the `.env` file, when one was read. */
  readonly envFile: string | undefined;
  /** Things that work but are probably not what the operator meant. */
  readonly warnings: readonly string[];
  readonly sourceOf: (path: ReadonlyArray<string | number>) => SettingSource;
}

const origins = new WeakMap<GatewayConfig, ConfigOrigin>();

/** The origin of a configuration built by this loader. */
export function configOrigin(config: GatewayConfig): ConfigOrigin | undefined {
  return origins.get(config);
}

/** The configuration with other endpoints (those added at runtime), keeping where the rest came from. */
export function withEndpoints(config: GatewayConfig, endpoints: GatewayConfig['endpoints']): GatewayConfig {
  const next = Object.freeze({ ...config, endpoints }) as GatewayConfig;
  const origin = origins.get(config);
  if (origin) origins.set(next, origin);
  return next;
}

/**
 * Builds the frozen gateway configuration from environment variables and an optional config file.
 * Throws ConfigError listing every problem found. `configOrigin(config)` tells where each value came
 * from and what looked wrong.
 */
export function loadConfig(options: LoadConfigOptions): GatewayConfig {
  const { env } = options;
  const problems: string[] = [];
  const warnings: string[] = [];
  const raw: Record<string, unknown> = {};
  /** What the file set (after `${VAR}` replacement) and what the environment set, apart. */
  let fileTree: Record<string, unknown> = {};
  const envTree: Record<string, unknown> = {};
  const fromEnv = new Map<string, string>();
  const envFileNames = options.envFile?.names ?? new Set<string>();
  const setFromEnv = (keyPath: readonly string[], value: unknown, variable: string) => {
    setPath(raw, keyPath, value);
    setPath(envTree, keyPath, value);
    fromEnv.set(keyPath.join('.'), variable);
  };

  const configFile = nonBlank(env.CONFIG_FILE);
  // A source that failed to parse would only add follow-up complaints (no endpoints, no key).
  let fileFailed = false;
  let endpointsFailed = false;
  const file = configFile ? path.resolve(options.cwd ?? process.cwd(), configFile) : undefined;
  if (configFile && file) {
    let text: string | undefined;
    try {
      text = (options.readFile ?? ((f: string) => readFileSync(f, 'utf8')))(file);
      const parsed: unknown = text.trim() === '' ? {} : parseYaml(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        problems.push(`CONFIG_FILE ${configFile}: expected a mapping of sections (server, endpoints, ...)`);
        fileFailed = true;
      } else {
        const unset: string[] = [];
        fileTree = interpolate(parsed, env, [], unset) as Record<string, unknown>;
        Object.assign(raw, structuredClone(fileTree));
        for (const u of unset) warnings.push(`${configFile}: ${u}`);
      }
    } catch (err) {
      problems.push(`CONFIG_FILE ${configFile}: ${describeFileError(err, text)}`);
      fileFailed = true;
    }
  }

  for (const [name, keyPath] of ENV_PATHS) {
    const value = nonBlank(env[name]);
    if (value !== undefined) setFromEnv(keyPath, value, name);
  }

  const apiKeyVar = nonBlank(env.API_KEY) !== undefined ? 'API_KEY' : 'PROXY_API_KEY';
  const apiKeys = nonBlank(env.API_KEY) ?? nonBlank(env.PROXY_API_KEY);
  if (apiKeys !== undefined) setFromEnv(['auth', 'apiKeys'], apiKeys.split(','), apiKeyVar);
  for (const [name, keyPath] of LIST_PATHS) {
    const value = nonBlank(env[name]);
    if (value === undefined) continue;
    const list = value
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean);
    setFromEnv(keyPath, list, name);
  }

  const endpointsJson = nonBlank(env.ENDPOINTS);
  if (endpointsJson !== undefined) {
    try {
      setFromEnv(['endpoints'], JSON.parse(endpointsJson) as unknown, 'ENDPOINTS');
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

  const variableLabel = (variable: string) =>
    envFileNames.has(variable) ? `${variable} (.env)` : `${variable} (environment)`;
  if (configFile && !fileFailed) {
    for (const [keyPath, variable] of fromEnv) {
      if (has(fileTree, keyPath.split('.')))
        warnings.push(`${variableLabel(variable)} replaces ${keyPath} in ${configFile}`);
    }
  }

  // reportInput: tells a missing value ('is required') from a wrong one.
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!fileFailed && !hasClientKeyOrAuthDisabled(raw)) problems.push(MISSING_API_KEY);
  const rawEndpoints = raw.endpoints;
  if (!fileFailed && !endpointsFailed && (rawEndpoints === undefined || isEmptyList(rawEndpoints))) {
    problems.push(
      configFile && !fromEnv.has('endpoints')
        ? `CONFIG_FILE ${configFile} lists no endpoints: add an \`endpoints:\` list to it (see README.md, ` +
            'Config file), or set ENDPOINTS'
        : NO_ENDPOINTS,
    );
  }
  if (!result.success) {
    problems.push(...result.error.issues.map((issue) => describeIssue(issue, raw, fromEnv)));
    // Found by the final transform when it ran; otherwise checked apart (the same words either way).
    for (const issue of keyStrengthIssuesOf(raw)) {
      const problem = describeIssue({ ...issue, code: 'custom', input: undefined }, raw, fromEnv);
      if (!problems.includes(problem)) problems.push(problem);
    }
  }
  if (!result.success || problems.length > 0) throw new ConfigError(problems, warnings);
  const config = deepFreeze({ ...result.data, configFile: file });
  warnings.push(...configWarnings(config, raw, fromEnv));

  const sourceOf = (keyPath: ReadonlyArray<string | number>): SettingSource => {
    for (let n = keyPath.length; n > 0; n--) {
      const variable = fromEnv.get(keyPath.slice(0, n).join('.'));
      if (variable === undefined) continue;
      // The variable replaced this part of the structure: what it did not give is a default.
      if (has(envTree, keyPath))
        return { source: 'env', variable, ...(envFileNames.has(variable) ? { file: '.env' } : {}) };
      return inheritedOrDefault(keyPath);
    }
    if (configFile && has(fileTree, keyPath)) return { source: 'file', file: configFile };
    return inheritedOrDefault(keyPath);
  };
  /** An endpoint's timeout it does not set is the global one, with that one's source. */
  const inheritedOrDefault = (keyPath: ReadonlyArray<string | number>): SettingSource =>
    keyPath[0] === 'endpoints' && keyPath[2] === 'timeouts' && keyPath.length === 4
      ? sourceOf(['routing', 'timeouts', keyPath[3]!])
      : { source: 'default' };
  origins.set(config, {
    configFile: file,
    envFile: options.envFile?.path,
    warnings: Object.freeze(warnings),
    sourceOf,
  });
  return config;
}

/**
 * Reads `.env` (its values fill in what the environment does not set) and then the environment, again
 * on every call: a reload sees an edited `.env`. The only place in the gateway that reads process.env;
 * `.env` is never copied into it.
 */
export function loadConfigFromProcess(layers: { defaults?: Env; overrides?: Env } = {}): GatewayConfig {
  const processEnv = definedOnly(process.env);
  const envFile = readEnvFile(processEnv);
  return loadConfig({
    env: { ...layers.defaults, ...envFile?.values, ...processEnv, ...layers.overrides },
    envFile: envFile && { path: envFile.path, names: envFile.names },
  });
}

/** The `.env` of the working directory, if there is one, and which of its names the environment leaves to it. */
export function readEnvFile(
  processEnv: Env,
  cwd = process.cwd(),
): { path: string; values: Env; names: ReadonlySet<string> } | undefined {
  const file = path.resolve(cwd, '.env');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const values = definedOnly(dotenv.parse(text));
  const names = new Set(Object.keys(values).filter((name) => processEnv[name] === undefined));
  return { path: file, values, names };
}

function definedOnly(env: Env): Env {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
}

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string of the parsed file; a variable that is not
 * set (and has no default) is noted in `unset`.
 */
function interpolate(value: unknown, env: Env, at: Array<string | number>, unset: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(
      /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
      (_m, name: string, fallback?: string) => {
        const v = env[name];
        if (v !== undefined && v !== '') return v;
        if (fallback === undefined)
          unset.push(`\${${name}} is not set in the environment, so ${formatPath(at)} lacks it`);
        return fallback ?? '';
      },
    );
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, [...at, i], unset));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolate(v, env, [...at, k], unset)]),
    );
  }
  return value;
}

/** Whether `keyPath` leads to a value in `tree`. */
function has(tree: unknown, keyPath: ReadonlyArray<string | number>): boolean {
  let node = tree;
  for (const key of keyPath) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) return false;
    node = (node as Record<string, unknown>)[key];
  }
  return node !== undefined;
}

function isEmptyList(v: unknown): boolean {
  return Array.isArray(v) && v.length === 0;
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
  'API_KEY: no client API key is set. Set API_KEY (comma-separated for several keys), JWT_SECRET or ' +
  'JWT_PUBLIC_KEY (clients send JWTs), or, only for a private network, AUTH_DISABLED=true';

/** The API-key check on the raw input, so that it is reported even when the schema found other problems. */
function hasClientKeyOrAuthDisabled(raw: Record<string, unknown>): boolean {
  const { apiKeys, disabled, jwt } = (raw.auth ?? {}) as {
    apiKeys?: unknown;
    disabled?: unknown;
    jwt?: { secret?: unknown; publicKey?: unknown };
  };
  if (disabled === true) return true;
  // Clients may come with JWTs alone.
  const set = (v: unknown) => typeof v === 'string' && v.trim() !== '';
  if (set(jwt?.secret) || set(jwt?.publicKey)) return true;
  if (typeof disabled === 'string' && ['true', '1', 'yes', 'on'].includes(disabled.trim().toLowerCase()))
    return true;
  return Array.isArray(apiKeys) && apiKeys.some((k) => typeof k === 'string' && k.trim() !== '');
}
