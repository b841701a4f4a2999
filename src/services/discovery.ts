import type { Logger } from '../observability/logger.js';
import type { Endpoint, EndpointRegistry } from './endpoint-registry.js';
import type { Forwarder } from './forwarder.js';
import { transportFailure } from './forwarder.js';

const MAX_MODELS_BODY_BYTES = 4 * 1024 * 1024;

export interface DiscoveryOptions {
  registry: EndpointRegistry;
  forwarder: Forwarder;
  logger: Logger;
  intervalMs: number;
  timeoutMs: number;
  now: () => number;
}

/**
 * Keeps each endpoint's model list current by polling its `GET /v1/models`, all endpoints in parallel,
 * each bounded by a timeout, at start and then on an interval. Start-up never waits for it. A failed poll
 * keeps the last known list (passive health handles an endpoint that is down); a successful poll
 * replaces it, so a model that disappears stops being routed there and an endpoint that was down at boot
 * joins as soon as it answers.
 */
export class Discovery {
  private timer: NodeJS.Timeout | undefined;
  /** Aborts polls still in flight when the gateway stops. */
  private readonly lifetime = new AbortController();
  private running: Promise<void> | undefined;
  private readonly initial: Promise<void>;
  private resolveInitial!: () => void;

  constructor(private readonly options: DiscoveryOptions) {
    this.initial = new Promise((resolve) => (this.resolveInitial = resolve));
    if (this.targets().length === 0) this.resolveInitial();
  }

  /** Starts polling now and every intervalMs. Returns at once. */
  start(): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.lifetime.abort();
  }

  /** Resolves when the first round has finished (at most about timeoutMs after start). */
  initialRound(): Promise<void> {
    return this.initial;
  }

  /** One round over every endpoint without a static model list; concurrent calls share one round. */
  refresh(): Promise<void> {
    this.running ??= Promise.allSettled(this.targets().map((ep) => this.discover(ep))).then(() => {
      this.running = undefined;
      this.resolveInitial();
    });
    return this.running;
  }

  private targets(): Endpoint[] {
    return this.options.registry.endpoints.filter((ep) => ep.config.models === undefined);
  }

  private async discover(ep: Endpoint): Promise<void> {
    const { forwarder, registry, logger, timeoutMs, now } = this.options;
    if (this.lifetime.signal.aborted) return;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([timeout, this.lifetime.signal]);
    try {
      const res = await forwarder.send({
        endpoint: ep.config,
        method: 'GET',
        path: '/v1/models',
        headers: { accept: 'application/json' },
        signal,
      });
      const text = await readLimited(res.body as AsyncIterable<Buffer>, MAX_MODELS_BODY_BYTES);
      if (res.statusCode !== 200) throw new Error(`GET /v1/models answered HTTP ${res.statusCode}`);
      const ids = parseModelIds(text);
      const before = [...ep.models].sort().join(',');
      registry.setDiscovered(ep, ids, now());
      if (before !== [...ids].sort().join(',')) {
        logger.info({ endpoint: ep.config.name, models: ids }, 'endpoint models discovered');
      }
    } catch (err) {
      if (this.lifetime.signal.aborted) return;
      const message = timeout.aborted
        ? `GET /v1/models did not answer within ${timeoutMs} ms`
        : err instanceof DiscoveryError || (err instanceof Error && !('code' in err))
          ? err.message
          : transportFailure(err).message;
      if (ep.lastDiscoveryError !== message) {
        logger.warn({ endpoint: ep.config.name, error: message }, 'model discovery failed');
      }
      ep.lastDiscoveryError = message;
    }
  }
}

class DiscoveryError extends Error {}

export function parseModelIds(text: string): string[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new DiscoveryError('GET /v1/models did not return JSON');
  }
  const data = (json as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw new DiscoveryError('GET /v1/models returned no data array');
  const ids = new Set<string>();
  for (const item of data) {
    const id = (item as { id?: unknown } | null)?.id;
    if (typeof id === 'string' && id.trim() !== '') ids.add(id);
  }
  return [...ids];
}

async function readLimited(body: AsyncIterable<Buffer>, maxBytes: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) throw new DiscoveryError('GET /v1/models returned more than 4 MiB');
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString('utf8');
}
