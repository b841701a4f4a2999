import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type express from 'express';
import { createApp } from './app.js';
import type { GatewayConfig } from './config/types.js';
import type { Logger } from './observability/logger.js';
import { CompletionService } from './services/completion-service.js';
import { Discovery } from './services/discovery.js';
import { EndpointRegistry } from './services/endpoint-registry.js';
import { Forwarder } from './services/forwarder.js';
import { HealthMonitor } from './services/health.js';

export interface GatewayOptions {
  config: GatewayConfig;
  logger: Logger;
  /** Injected for deterministic tests; Math.random and Date.now otherwise. */
  random?: () => number;
  now?: () => number;
}

/** The composed gateway: services wired together, an HTTP server, start and graceful stop. */
export class Gateway {
  readonly app: express.Express;
  readonly registry: EndpointRegistry;
  readonly discovery: Discovery;
  readonly completions: CompletionService;
  private readonly forwarder = new Forwarder();
  private server: Server | undefined;
  private shuttingDown = false;
  private inFlight = 0;
  private idle: (() => void) | undefined;

  constructor(private readonly options: GatewayOptions) {
    const { config, logger } = options;
    const now = options.now ?? Date.now;
    const health = new HealthMonitor({ ejection: config.health.ejection, now });
    this.registry = new EndpointRegistry(config.endpoints, health);
    this.discovery = new Discovery({
      registry: this.registry,
      forwarder: this.forwarder,
      logger,
      intervalMs: config.models.discoveryIntervalMs,
      timeoutMs: config.models.discoveryTimeoutMs,
      now,
    });
    this.completions = new CompletionService({
      config,
      registry: this.registry,
      forwarder: this.forwarder,
      logger,
      initialDiscovery: () => this.discovery.initialRound(),
      random: options.random ?? Math.random,
      now,
    });
    this.app = createApp({
      config,
      logger,
      registry: this.registry,
      completions: this.completions,
      isShuttingDown: () => this.shuttingDown,
    });
  }

  /** Starts discovery (without waiting for it) and listens. */
  async listen(
    port = this.options.config.server.port,
    host = this.options.config.server.host,
  ): Promise<AddressInfo> {
    this.discovery.start();
    const server = this.app.listen(port, host);
    this.server = server;
    // LLM answers can take minutes: node's default request timeout (5 min) must not cut them.
    server.requestTimeout = 0;
    server.headersTimeout = 60_000;
    server.keepAliveTimeout = 65_000;
    server.on('request', (_req, res) => {
      this.inFlight++;
      if (this.shuttingDown) res.setHeader('connection', 'close');
      res.once('close', () => {
        this.inFlight--;
        if (this.inFlight === 0) this.idle?.();
      });
    });
    await once(server, 'listening');
    return server.address() as AddressInfo;
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
   * Graceful stop: refuse new connections, let in-flight requests (streams included) finish within
   * graceMs, then cut what is left and release upstream connections.
   */
  async shutdown(graceMs = this.options.config.server.shutdownGraceMs): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.discovery.stop();
    const server = this.server;
    if (server) {
      const closed = once(server, 'close');
      server.close();
      server.closeIdleConnections();
      if (this.inFlight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => (this.idle = resolve)),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
        ]);
        clearTimeout(timer);
        if (this.inFlight > 0) {
          this.options.logger.warn(
            { inFlight: this.inFlight },
            'grace period over: closing remaining requests',
          );
        }
      }
      server.closeAllConnections();
      await closed;
    }
    await this.forwarder.close();
  }
}
