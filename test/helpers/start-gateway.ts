import { Writable } from 'node:stream';
import { loadConfig, type Env } from '../../src/config/load-config.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/observability/logger.js';

export const CLIENT_KEY = 'sk-client-test-key-0123456789';

export interface EndpointSpec {
  url: string;
  provider?: string;
  apiVersion?: string;
  deployments?: Record<string, string>;
  defaultMaxTokens?: number;
  name?: string;
  apiKey?: string;
  priority?: number;
  weight?: number;
  models?: string[];
  modelNames?: Record<string, string>;
  maxConcurrent?: number;
  timeouts?: Partial<{ connectMs: number; firstByteMs: number; idleMs: number; totalMs: number }>;
}

export interface StartOptions {
  endpoints: EndpointSpec[];
  env?: Env;
  random?: () => number;
  now?: () => number;
  /** Environment for reloads (SIGHUP, admin route): re-read through the same loader. */
  reloadEnv?: () => Env;
  /** Wait for the first discovery round before returning (default true). */
  waitForDiscovery?: boolean;
}

export interface TestGateway {
  gateway: Gateway;
  url: string;
  /** Every log line the gateway wrote, parsed. */
  logs: Array<Record<string, unknown>>;
  /** The raw log output, for secret scans. */
  rawLogs: () => string;
  auth: { authorization: string };
  close: () => Promise<void>;
}

/** Starts a real gateway on an ephemeral port, configured through the same loader as production. */
export function gatewayEnv(endpoints: EndpointSpec[], env: Env = {}): Env {
  return {
    API_KEY: CLIENT_KEY,
    // What the test gateway listens on: weak test keys are allowed there, as for the demo.
    HOST: '127.0.0.1',
    ENDPOINTS: JSON.stringify(endpoints),
    LOG_LEVEL: 'debug',
    // Polls only when a test asks (discovery.refresh()) unless it sets shorter intervals.
    DISCOVERY_INTERVAL_MS: '3600000',
    HEALTH_PROBE_INTERVAL_MS: '3600000',
    // Keys and teams in memory: each test gateway starts empty and leaves no file behind.
    DATABASE_URL: 'sqlite::memory:',
    ...env,
  };
}

export async function startGateway(options: StartOptions): Promise<TestGateway> {
  const env = gatewayEnv(options.endpoints, options.env);
  const config = loadConfig({ env });
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const logger = createLogger({ level: config.logging.level, stream });
  const reloadEnv = options.reloadEnv;
  const gateway = new Gateway({
    config,
    logger,
    random: options.random,
    now: options.now,
    loadConfig: reloadEnv ? () => loadConfig({ env: { ...env, ...reloadEnv() } }) : undefined,
  });
  await gateway.listen(0, '127.0.0.1');
  if (options.waitForDiscovery !== false) await gateway.discovery.initialRound();
  const logs: Array<Record<string, unknown>> = [];
  return {
    gateway,
    url: gateway.url,
    get logs() {
      logs.length = 0;
      for (const line of chunks.join('').split('\n'))
        if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      return logs;
    },
    rawLogs: () => chunks.join(''),
    auth: { authorization: `Bearer ${CLIENT_KEY}` },
    close: () => gateway.shutdown(1_000),
  };
}

/** A seeded PRNG (mulberry32) for reproducible weighted-selection tests. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
