import { randomUUID } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type express from 'express';
import { createApp } from './app.js';
import { answerClientError } from './http/client-error.js';
import { shuttingDown } from './http/middleware/error-handler.js';
import { Connections, FIRST_REQUEST_WAIT_MS } from './http/connections.js';
import { shapeRequest } from './http/request-shape.js';
import { ConfigStore } from './config/config-store.js';
import { ConfigError, configOrigin, withEndpoints } from './config/load-config.js';
import type { GatewayConfig } from './config/types.js';
import { describeConfig } from './config/describe-config.js';
import {
  GatewayError,
  InvalidConfigReloadError,
  ReloadUnavailableError,
  type ErrorCode,
} from './errors/gateway-error.js';
import type { Logger } from './observability/logger.js';
import { CompletionService } from './services/completion/completion-service.js';
import { Discovery } from './services/endpoints/discovery.js';
import { EndpointRegistry } from './services/endpoints/registry.js';
import { Forwarder } from './services/forwarder/forwarder.js';
import { sseError } from './services/core/sse.js';
import { HealthMonitor, type SharedHealthChange } from './services/endpoints/health.js';
import { ClaimService } from './services/keys/claim-service.js';
import { KeyService } from './services/keys/key-service.js';
import { Limiter } from './services/limits/limiter.js';
import { UsageLedger } from './services/usage/ledger.js';
import { UsageRecorder } from './http/usage-recorder.js';
import type { CounterStore, PeerMessage } from './stores/counters/counter-store.js';
import { RedisCounters } from './stores/counters/redis-counters.js';
import { openCache, openCounters, openingRecordStore } from './stores/open-stores.js';
import { ResponseCache } from './services/cache/response-cache.js';
import { GatewayMetrics } from './observability/metrics.js';
import { TrafficHistory, trafficView, type TrafficInterval } from './observability/traffic-history.js';
import { openTracing, type Tracing } from './observability/tracing.js';
import { readinessOf } from './services/endpoints/condition.js';
import { RuntimeEndpoints } from './services/endpoints/runtime-endpoints.js';
import type { RegistryChange } from './services/endpoints/registry.js';
import type { EndpointConfig } from './config/types.js';
import type { RecordStore } from './stores/records/record-store.js';

/** The dashboard's traffic history: 5-second intervals over the last 15 minutes. */
const TRAFFIC_INTERVAL_MS = 5_000;
const TRAFFIC_KEEP = 180;

/** A start-up failure that is no bug: said in words (a database that cannot be opened…). */
export class StartupError extends Error {}

export interface GatewayOptions {
  config: GatewayConfig;
  logger: Logger;
  /** Re-reads the configuration for a reload (SIGHUP, a changed CONFIG_FILE, the admin route). */
  loadConfig?: () => GatewayConfig;
  /**
   * Reloads every process of the gateway (a cluster worker asks its primary) and gives their answers;
   * the admin route uses it instead of reloading this process alone.
   */
  reloadAll?: () => Promise<readonly ProcessReload[]>;
  /** Injected for deterministic tests; Math.random and Date.now otherwise. */
  random?: () => number;
  now?: () => number;
  /** A scrape's text when it is not this process's alone (a cluster worker asks its primary). */
  metricsText?: () => Promise<string>;
  /** Every process's traffic history when this one is not alone (a cluster worker asks its primary). */
  trafficOfAll?: () => Promise<TrafficInterval[][]>;
  /** Stores to use instead of those the configuration names (tests share one between gateways). */
  stores?: { records: RecordStore; counters: CounterStore };
}

export interface ReloadSummary {
  /** Endpoints added, removed and changed, by name. */
  added: string[];
  removed: string[];
  changed: string[];
  /** Other settings whose value changed, by path (`routing.maxAttempts`); never their values. */
  settings: string[];
  /** Settings that changed but only take effect after a restart. */
  restartNeeded: string[];
  /** The new configuration's warnings (an environment variable replacing a file setting…). */
  warnings: readonly string[];
}

/** One process's answer to a reload: its summary, or the error that refused it. */
export type ProcessReload =
  | { pid: number; ok: true; summary: ReloadSummary }
  | { pid: number; ok: false; code: string; message: string; problems?: readonly string[] | undefined };

/** The composed gateway: services wired together, an HTTP server, start, reload and graceful stop. */
export class Gateway {
  readonly app: express.Express;
  readonly config: ConfigStore;
  readonly registry: EndpointRegistry;
  readonly discovery: Discovery;
  readonly completions: CompletionService;
  readonly records: RecordStore;
  readonly counters: CounterStore;
  readonly keys: KeyService;
  readonly limiter: Limiter;
  readonly claims: ClaimService;
  readonly ledger: UsageLedger;
  /** The response cache; undefined when CACHE is off. */
  readonly cache: ResponseCache | undefined;
  /** Prometheus metrics (GET /metrics). */
  readonly metrics: GatewayMetrics;
  /** The last minutes of traffic, read off the metrics (the dashboard's charts). */
  readonly traffic: TrafficHistory;
  /** OpenTelemetry tracing; undefined unless OTEL_EXPORTER_OTLP_ENDPOINT is set. */
  readonly tracing: Tracing | undefined;
  /** Endpoints added through the admin API (kept in the record store). */
  readonly runtimeEndpoints: RuntimeEndpoints;
  /** The endpoints of the configuration as loaded (file or ENDPOINTS), without the runtime ones. */
  private fileEndpoints: readonly EndpointConfig[];
  private runtimeConfigs: readonly EndpointConfig[] = [];
  /** `peer-health` (a SharedHealthChange applied): what tests and embedders may watch. */
  readonly events = new EventEmitter();
  /** Applies an endpoint state change another replica published. */
  private readonly applyPeerHealth: (message: PeerMessage) => void;
  /** Resolves when the record store is open (rejects with why it could not be). */
  private readonly recordsOpened: Promise<unknown>;
  private readonly forwarder = new Forwarder();
  private server: Server | undefined;
  private connections: Connections | undefined;
  private shuttingDown = false;
  /** Responses not yet closed: what a graceful stop waits for. */
  private readonly open = new Set<ServerResponse>();
  private idle: (() => void) | undefined;

  constructor(private readonly options: GatewayOptions) {
    const { logger } = options;
    const now = options.now ?? Date.now;
    this.config = new ConfigStore(options.config);
    if (options.stores) {
      this.records = options.stores.records;
      this.counters = options.stores.counters;
      this.recordsOpened = Promise.resolve();
    } else {
      const opening = openingRecordStore(options.config.database.url, logger);
      this.records = opening.store;
      this.recordsOpened = opening.opened;
      this.counters = openCounters({
        redisUrl: options.config.redis.url,
        prefix: options.config.redis.prefix,
        logger,
        now: options.now,
      });
    }
    const replica = randomUUID();
    const sharesHealth = this.counters.backend === 'redis';
    const health = new HealthMonitor({
      ejection: options.config.health.ejection,
      now,
      // Through the logger of the request that caused it, when one did: the line carries its id.
      onChange: ({ endpoint, change, untilMs, reason, log = logger }) =>
        change === 'ejected'
          ? log.warn({ endpoint, ejectedForMs: untilMs, reason }, 'endpoint ejected')
          : log.info({ endpoint }, 'endpoint restored'),
      // Replicas on one Redis tell each other, so that ten replicas do not each pay for a dead lease.
      share: sharesHealth
        ? (event) =>
            void this.counters
              .publish({ type: 'endpoint-health', from: replica, ...event })
              .catch(() => undefined)
        : undefined,
    });
    this.applyPeerHealth = (message) => {
      if (message.from === replica) return;
      // Another replica changed the runtime endpoints: read them now rather than at the next poll.
      if (message.type === 'endpoints-changed') {
        void this.runtimeEndpoints
          .refresh()
          .catch((err: unknown) =>
            logger.error({ err: (err as Error).message }, 'runtime endpoints could not be read'),
          );
        return;
      }
      if (message.type !== 'endpoint-health') return;
      const event = sharedHealthChange(message);
      if (!event || !health.applyShared(event)) return;
      logger.info(
        { endpoint: event.endpoint, change: event.change, forMs: event.forMs },
        'endpoint state from another replica',
      );
      this.events.emit('peer-health', event);
    };
    this.registry = new EndpointRegistry(options.config.endpoints, health);
    // Endpoint gauges are read at each scrape: nothing on the request path.
    this.metrics = new GatewayMetrics(() => {
      const readiness = readinessOf(this.registry, this.config.current);
      return this.registry.endpoints.map((ep, i) => ({
        name: ep.config.name,
        up: readiness.endpoints[i]?.up ?? false,
        inFlight: ep.health.inFlight,
      }));
    });
    this.traffic = new TrafficHistory(() => this.metrics.snapshot(), {
      intervalMs: TRAFFIC_INTERVAL_MS,
      keep: TRAFFIC_KEEP,
      now,
    });
    this.discovery = new Discovery({
      registry: this.registry,
      forwarder: this.forwarder,
      logger,
      config: this.config,
      now,
    });
    this.completions = new CompletionService({
      config: this.config,
      registry: this.registry,
      forwarder: this.forwarder,
      logger,
      pendingDiscovery: () => this.discovery.pendingRound(),
      random: options.random ?? Math.random,
      now,
      onAttempt: (endpoint, provider, outcome) => this.metrics.attempt(provider, endpoint, outcome),
    });
    this.fileEndpoints = options.config.endpoints;
    this.runtimeEndpoints = new RuntimeEndpoints({
      records: this.records,
      config: this.config,
      logger,
      now,
      fileEndpoints: () => this.fileEndpoints,
      // With Redis, the other replicas (and workers) hear of a change at once; the poll is the fallback.
      changed: sharesHealth
        ? () =>
            void this.counters.publish({ type: 'endpoints-changed', from: replica }).catch(() => undefined)
        : undefined,
      apply: (endpoints) => {
        this.runtimeConfigs = endpoints;
        const change = this.applyEndpoints();
        if (change.added.length + change.removed.length + change.changed.length > 0)
          logger.info(
            { added: change.added, removed: change.removed, changed: change.changed },
            'runtime endpoints applied',
          );
      },
    });
    this.keys = new KeyService({
      records: this.records,
      config: this.config,
      logger,
      now,
      limitsUnavailable: () => this.limitsUnavailable(),
      onChange: () =>
        void this.runtimeEndpoints
          .refresh()
          .catch((err: unknown) =>
            logger.error({ err: (err as Error).message }, 'runtime endpoints could not be read'),
          ),
    });
    this.limiter = new Limiter({ counters: this.counters, config: this.config, logger, now });
    this.claims = new ClaimService({
      keys: this.keys,
      counters: this.counters,
      config: this.config,
      logger,
      now,
    });
    this.ledger = new UsageLedger({
      records: this.records,
      logger,
      now,
      retentionDays: () => this.config.current.usage.retentionDays,
    });
    const cacheStore = openCache({
      mode: options.config.cache.mode,
      maxBytes: options.config.cache.maxBytes,
      redisUrl: options.config.redis.url,
      prefix: options.config.redis.prefix,
      logger,
      now: options.now,
    });
    this.cache = cacheStore
      ? new ResponseCache({ store: cacheStore, config: this.config, logger, now })
      : undefined;
    this.tracing = openTracing(options.config.tracing);
    this.app = createApp({
      config: this.config,
      logger,
      registry: this.registry,
      completions: this.completions,
      keys: this.keys,
      claims: this.claims,
      limiter: this.limiter,
      usage: new UsageRecorder(this.ledger, this.config, now),
      ledger: this.ledger,
      cache: this.cache,
      metrics: this.metrics,
      tracing: this.tracing,
      metricsText: options.metricsText ?? (() => this.metrics.text()),
      selfUrl: () => this.url,
      traffic: async () =>
        trafficView(
          options.trafficOfAll ? await options.trafficOfAll() : [this.traffic.intervals()],
          TRAFFIC_INTERVAL_MS,
          TRAFFIC_INTERVAL_MS * TRAFFIC_KEEP,
        ),
      now,
      isShuttingDown: () => this.shuttingDown,
      pendingDiscovery: () => (this.registry.hasUnknownModels() ? this.discovery.pendingRound() : undefined),
      reload: () => this.reloadEverywhere(),
      configView: () => describeConfig(this.config.current),
      runtimeEndpoints: this.runtimeEndpoints,
    });
  }

  /**
   * Applies a new configuration without dropping requests in flight: endpoints are added, removed,
   * re-weighted or drained; every other setting applies to the next request.
   */
  reload(next: GatewayConfig): ReloadSummary {
    const previous = this.config.current;
    const settings = changedSettings(previous, next);
    const restartNeeded = settings.filter((path) => RESTART_NEEDED.has(path));
    this.fileEndpoints = next.endpoints;
    this.config.replace(next);
    this.applyServerTimeouts();
    this.options.logger.level = next.logging.level;
    this.registry.health.setEjection(next.health.ejection);
    // The runtime endpoints stay, under the new global timeouts.
    this.runtimeConfigs = this.runtimeEndpoints.configs();
    const change = this.applyEndpoints();
    const warnings = configOrigin(next)?.warnings ?? [];
    const summary: ReloadSummary = { ...change, settings, restartNeeded, warnings };
    this.options.logger.info(
      { added: change.added, removed: change.removed, changed: change.changed, settings, restartNeeded },
      'configuration reloaded',
    );
    for (const warning of warnings) this.options.logger.warn(`configuration: ${warning}`);
    if (restartNeeded.length > 0)
      this.options.logger.warn({ restartNeeded }, 'some changed settings take effect only after a restart');
    return summary;
  }

  /**
   * Puts the endpoints in force: the config file's, then those added at runtime. In-flight requests
   * to a removed endpoint finish; it takes no new ones.
   */
  private applyEndpoints(): RegistryChange {
    const endpoints =
      this.runtimeConfigs.length === 0 ? this.fileEndpoints : [...this.fileEndpoints, ...this.runtimeConfigs];
    if (this.config.current.endpoints !== endpoints)
      this.config.replace(withEndpoints(this.config.current, endpoints));
    const change = this.registry.update(endpoints);
    for (const name of change.removed) this.forwarder.retire(name);
    this.discovery.schedule();
    if (change.added.length > 0 || change.changed.length > 0) void this.discovery.refresh();
    return change;
  }

  /**
   * The admin route's reload: of every process of the gateway when it runs as a cluster, else of this
   * one. Any process refusing the new configuration makes the answer an error.
   */
  private async reloadEverywhere(): Promise<Record<string, unknown>> {
    if (!this.options.reloadAll) return { ...this.reloadFromSource() };
    const results = await this.options.reloadAll();
    const failed = results.find((r) => !r.ok);
    if (failed && !failed.ok) {
      if (failed.problems) throw new InvalidConfigReloadError(failed.problems);
      throw new GatewayError(failed.message, { code: failed.code as ErrorCode });
    }
    const summaries = results.flatMap((r) => (r.ok ? [{ pid: r.pid, ...r.summary }] : []));
    const own = summaries.find((r) => r.pid === process.pid) ?? summaries[0];
    return { ...own, pid: undefined, workers: summaries };
  }

  /** Reads the configuration again and applies it; a bad one is rejected and the old one stays. */
  reloadFromSource(): ReloadSummary {
    if (!this.options.loadConfig) throw new ReloadUnavailableError();
    let next: GatewayConfig;
    try {
      next = this.options.loadConfig();
    } catch (err) {
      if (err instanceof ConfigError) {
        this.options.logger.error(
          { problems: err.problems },
          'configuration reload rejected; keeping the old one',
        );
        throw new InvalidConfigReloadError(err.problems);
      }
      if (err instanceof GatewayError)
        this.options.logger.warn({ code: err.code }, `configuration not reloaded: ${err.message}`);
      throw err;
    }
    return this.reload(next);
  }

  /**
   * Why a limit could not hold here (several workers counting on their own), in words for a 409; or
   * undefined when limits are fine.
   */
  private limitsUnavailable(): string | undefined {
    const { server, redis } = this.config.current;
    if (server.workers <= 1 || redis.url !== undefined || this.options.stores) return undefined;
    return (
      `This gateway runs ${server.workers} workers (WORKERS) without REDIS_URL, so each worker would count ` +
      'limits on its own and let through several times the limit: set REDIS_URL (and restart) to use limits.'
    );
  }

  /** Opens the stores (migrating the database) and checks that its limits can hold. */
  private async startStores(): Promise<void> {
    try {
      await this.recordsOpened;
    } catch (err) {
      throw new StartupError((err as Error).message, { cause: err });
    }
    await this.keys.start();
    // Endpoints added through the admin API before this start (by this replica or another).
    await this.runtimeEndpoints.refresh();
    this.ledger.start();
    if (this.limitsUnavailable() && (await this.records.hasLimits()))
      throw new StartupError(
        `REDIS_URL is required: the key store holds keys or teams with limits, and this gateway runs ` +
          `${this.config.current.server.workers} workers (WORKERS) that would each count them on their own.`,
      );
    if (this.counters instanceof RedisCounters) {
      const reachable = await this.counters.ready().then(
        () => true,
        (err: unknown) => {
          this.options.logger.error(
            { err: (err as Error).message, onStoreError: this.config.current.limits.onStoreError },
            'Redis is not reachable at start: limits follow limits.onStoreError until it is',
          );
          return false;
        },
      );
      // Endpoint states from other replicas: subscribed before serving when Redis is there, else
      // as soon as it comes back.
      const subscribed = this.counters.onMessage(this.applyPeerHealth);
      if (reachable) await subscribed;
    }
  }

  /** Opens the stores, starts discovery (without waiting for it) and listens. */
  async listen(
    port = this.config.current.server.port,
    host = this.config.current.server.host,
  ): Promise<AddressInfo> {
    await this.startStores();
    this.traffic.start();
    this.discovery.start();
    // One listener function for every response (no closure per request).
    const open = this.open;
    const onResponseClose = (res: ServerResponse) => {
      open.delete(res);
      if (open.size === 0) this.idle?.();
    };
    const closed = function (this: ServerResponse) {
      onResponseClose(this);
    };
    const app = this.app;
    const { clientBodyTimeoutMs } = this.config.current.server;
    const server = createServer(
      // How often Node looks for requests past their time (its default, 30 s, would add up to 30 s).
      { connectionsCheckingInterval: Math.min(5_000, Math.max(50, Math.floor(clientBodyTimeoutMs / 10))) },
      (req, res) => {
        connections.onRequest(req.socket);
        open.add(res);
        if (this.shuttingDown) res.setHeader('connection', 'close');
        res.on('close', closed);
        shapeRequest(req, res);
        app(req, res);
      },
    );
    this.server = server;
    const connections = new Connections(server);
    this.connections = connections;
    this.applyServerTimeouts();
    server.keepAliveTimeout = 65_000;
    server.on('clientError', (err: NodeJS.ErrnoException, socket) =>
      answerClientError(err, socket, this.config.current.server.clientBodyTimeoutMs),
    );
    server.listen(port, host);
    await once(server, 'listening');
    return server.address() as AddressInfo;
  }

  /**
   * requestTimeout bounds only the receiving of a request (headers and body, CLIENT_BODY_TIMEOUT_MS):
   * long answers are not affected, and a client that trickles its body is cut with a 408.
   */
  private applyServerTimeouts(): void {
    const server = this.server;
    if (!server) return;
    const { clientBodyTimeoutMs } = this.config.current.server;
    server.requestTimeout = clientBodyTimeoutMs;
    server.headersTimeout = Math.min(60_000, clientBodyTimeoutMs);
  }

  get url(): string {
    const address = this.server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error('gateway is not listening');
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Graceful stop: readiness says 503 at once; the listener closes once the connections the kernel
   * has accepted are taken, and every request on them is answered (`connection: close`); in-flight
   * requests (streams included) finish within graceMs, then what is left is cut and upstream
   * connections are released.
   */
  async shutdown(graceMs = this.config.current.server.shutdownGraceMs): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.discovery.stop();
    const server = this.server;
    if (server) {
      const closed = once(server, 'close');
      const stopAt = performance.now() + graceMs;
      await this.connections!.stopListening(Math.min(FIRST_REQUEST_WAIT_MS, graceMs));
      graceMs = Math.max(0, stopAt - performance.now());
      this.options.logger.info({ inFlight: this.open.size }, 'stopped listening');
      if (this.open.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => (this.idle = resolve)),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
        ]);
        clearTimeout(timer);
        if (this.open.size > 0) {
          this.options.logger.warn(
            { inFlight: this.open.size },
            'grace period over: closing remaining requests',
          );
          // Their upstream attempts stop first, so that nothing counts against an endpoint.
          this.completions.endAll();
          await endOpenStreams([...this.open]);
        }
      }
      server.closeAllConnections();
      // http's close as well: it stops Node's timer that checks requests for their timeouts.
      server.close();
      await closed;
    }
    await this.forwarder.close();
    await this.closeStores();
  }

  private async closeStores(): Promise<void> {
    this.traffic.stop();
    this.limiter.stop();
    await this.keys.stop().catch(() => undefined);
    await this.ledger.stop().catch(() => undefined);
    await this.cache?.close().catch(() => undefined);
    await this.tracing?.shutdown().catch(() => undefined);
    if (this.options.stores) return;
    await this.records.close().catch(() => undefined);
    await this.counters.close().catch(() => undefined);
  }
}

/** A peer's message as an endpoint state change, if it is a well-formed one. */
function sharedHealthChange(message: PeerMessage): SharedHealthChange | undefined {
  const { endpoint, change, forMs, reason } = message;
  if (typeof endpoint !== 'string') return undefined;
  if (change !== 'ejected' && change !== 'restored' && change !== 'cooling-down') return undefined;
  if (forMs !== undefined && (typeof forMs !== 'number' || !Number.isFinite(forMs))) return undefined;
  return { endpoint, change, forMs, reason: typeof reason === 'string' ? reason.slice(0, 500) : undefined };
}

/** Settings a running process cannot change: they take effect at the next start. */
const RESTART_NEEDED = new Set([
  'server.port',
  'server.host',
  'server.workers',
  'logging.file',
  'logging.filePath',
  'server.trustProxy',
  'database.url',
  'redis.url',
  'cache.mode',
  'cache.maxBytes',
  'tracing.endpoint',
  'tracing.tracesEndpoint',
  'tracing.protocol',
  'tracing.serviceName',
]);

/** Paths of the settings (endpoints aside) whose values differ between two configurations. */
function changedSettings(previous: GatewayConfig, next: GatewayConfig): string[] {
  const out: string[] = [];
  const walk = (a: unknown, b: unknown, at: string) => {
    const objects =
      a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a);
    if (!objects || Array.isArray(b)) {
      if (JSON.stringify(a) !== JSON.stringify(b)) out.push(at);
      return;
    }
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      if (at === '' && (k === 'endpoints' || k === 'configFile')) continue;
      walk(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        at === '' ? k : `${at}.${k}`,
      );
    }
  };
  walk(previous, next, '');
  return out;
}

/**
 * Streams still open when the grace period ends get an error event, so clients know the answer is
 * incomplete, rather than a bare disconnect; the event gets a moment to be flushed.
 */
async function endOpenStreams(responses: ServerResponse[]): Promise<void> {
  const event = sseError(shuttingDown());
  const flushed: Array<Promise<unknown>> = [];
  for (const res of responses) {
    const isStream = String(res.getHeader('content-type') ?? '').includes('text/event-stream');
    if (!res.headersSent || !isStream || res.writableEnded || res.destroyed) continue;
    flushed.push(once(res, 'finish').catch(() => undefined));
    res.end(event);
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(flushed), new Promise((resolve) => (timer = setTimeout(resolve, 1_000)))]);
  clearTimeout(timer);
}
