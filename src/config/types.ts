import type { RoutingStrategy } from './schema.js';

export interface Timeouts {
  connectMs: number;
  firstByteMs: number;
  idleMs: number;
  totalMs: number;
  /** Minimum throughput after the first byte, judged over throughputWindowMs; 0 = off. */
  minBytesPerSecond: number;
  throughputWindowMs: number;
}

export interface EndpointConfig {
  /** Unique, shown in logs, headers and status; never the key. */
  name: string;
  /** Base URL without `/v1` and without a trailing slash. */
  url: string;
  apiKey: string | undefined;
  priority: number;
  weight: number;
  /** Static model list; when set, the endpoint is not discovered. */
  models: readonly string[] | undefined;
  maxConcurrent: number | undefined;
  /** Effective timeouts: the endpoint's own values over the global ones. */
  timeouts: Timeouts;
}

export interface HedgeConfig {
  /** Start a rival attempt when no first byte came within this delay; 0 = off; 'p95' = the model's p95. */
  delayMs: number | 'p95';
  /** Models hedging applies to ('*' for all). */
  models: readonly string[];
}

export interface AffinityConfig {
  /** Request header carrying the session id (lower case). */
  header: string;
  /** Also use the body's `user` field as the session id. */
  userField: boolean;
  /** Bounded load: an endpoint above loadFactor × the average load takes no more sessions. */
  loadFactor: number;
}

export interface EjectionConfig {
  consecutiveFailures: number;
  /** Eject when at least this share of the recent requests failed… */
  failureRatio: number;
  /** …once at least this many recent requests are known. */
  minRequests: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectedPercent: number;
}

export interface GatewayConfig {
  /** Absolute path of CONFIG_FILE when one was given (watched for reloads). */
  configFile: string | undefined;
  server: {
    port: number;
    host: string;
    bodyLimitBytes: number;
    corsOrigins: readonly string[];
    shutdownGraceMs: number;
    workers: number;
    heartbeatIntervalMs: number;
    /** Longest time a client may take to send its request, headers and body. */
    clientBodyTimeoutMs: number;
  };
  auth: { apiKeys: readonly string[]; adminKey: string | undefined; disabled: boolean };
  logging: { level: string; file: boolean; filePath: string };
  models: { ownedBy: string; discoveryIntervalMs: number; discoveryTimeoutMs: number };
  endpoints: readonly EndpointConfig[];
  routing: {
    strategy: RoutingStrategy;
    maxAttempts: number;
    timeouts: Timeouts;
    /** Session affinity, when configured. */
    affinity: AffinityConfig | undefined;
    hedge: HedgeConfig;
    /** Client headers forwarded upstream besides the default allow-list (names, or prefixes ending in *). */
    forwardHeaders: readonly string[];
    /** Continue a broken text stream on another endpoint. */
    continuation: boolean;
    /** One stream's transcript kept for continuation at most (bytes). */
    continuationMaxBytes: number;
    /** All streams' transcripts together at most (bytes). */
    continuationBudgetBytes: number;
  };
  aliases: Readonly<Record<string, readonly string[]>>;
  health: { probeIntervalMs: number; ejection: EjectionConfig };
}
