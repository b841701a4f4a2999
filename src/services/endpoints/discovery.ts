import type { ConfigSource } from '../../config/config-store.js';
import type { Logger } from '../../observability/logger.js';
import type { Endpoint, EndpointRegistry, ListedModel, ModelMeta } from './registry.js';
import type { Forwarder } from '../forwarder/forwarder.js';
import { transportFailure } from '../forwarder/forwarder.js';
import type { FailureKind } from '../core/outcomes.js';
import { readBody } from '../forwarder/read-body.js';
import { providerOf } from '../providers/providers.js';

const MAX_MODELS_BODY_BYTES = 4 * 1024 * 1024;

export interface DiscoveryOptions {
  registry: EndpointRegistry;
  forwarder: Forwarder;
  logger: Logger;
  config: ConfigSource;
  now: () => number;
}

/**
 * Model discovery and active health probes in one cheap request: `GET /v1/models` on each endpoint, all
 * in parallel, each bounded by DISCOVERY_TIMEOUT_MS. A healthy endpoint is polled every
 * DISCOVERY_INTERVAL_MS; one that is ejected, failing its probes or whose models are unknown is probed
 * every `health.probeIntervalMs`, so that it rejoins quickly. Start-up never waits for a poll.
 *
 * A successful poll replaces a discovered endpoint's model list (a vanished model stops being routed
 * there, a late endpoint joins) and makes an ejected endpoint half-open at once. A failed one keeps the
 * last known list and counts towards ejection, so a dead endpoint is taken out before clients pay for it.
 */
export class Discovery {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly polling = new Set<Endpoint>();
  private readonly initial: Promise<void>;
  private resolveInitial!: () => void;
  private initialDone = false;
  /** Aborts polls still in flight when the gateway stops. */
  private readonly lifetime = new AbortController();

  constructor(private readonly options: DiscoveryOptions) {
    this.initial = new Promise((resolve) => (this.resolveInitial = resolve));
  }

  /** Polls every endpoint now, then keeps polling on schedule. Returns at once. */
  start(): void {
    void this.refresh();
    this.schedule();
  }

  /** Re-reads the intervals (after a configuration reload). */
  schedule(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.lifetime.signal.aborted) return;
    const { models, health } = this.options.config.current;
    this.timer = setInterval(
      () => void this.tick(),
      Math.min(models.discoveryIntervalMs, health.probeIntervalMs),
    );
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.lifetime.abort();
  }

  /** Resolves when the first round has finished (at most about DISCOVERY_TIMEOUT_MS after start). */
  initialRound(): Promise<void> {
    return this.initial;
  }

  /**
   * The round of polls that will tell every endpoint's models, while one runs: the first one, or the
   * one a reload started for new endpoints. Routes that must not answer "no such model" before it wait
   * for it (each poll is bounded by DISCOVERY_TIMEOUT_MS). Undefined when none runs.
   */
  pendingRound(): Promise<void> | undefined {
    return this.running ?? (this.initialDone ? undefined : this.initial);
  }

  /** Polls every endpoint now; concurrent calls share one round. */
  refresh(): Promise<void> {
    this.running ??= this.pollAll(this.options.registry.endpoints).then(() => {
      this.running = undefined;
      this.initialDone = true;
      this.resolveInitial();
    });
    return this.running;
  }

  private tick(): Promise<void> {
    const now = this.options.now();
    const { models, health } = this.options.config.current;
    const due = this.options.registry.endpoints.filter((ep) => {
      const last = ep.health.lastProbeAt;
      if (last === undefined) return true;
      const unwell = !ep.modelsKnown || ep.health.probeFailing || ep.health.isEjected;
      const interval = unwell ? health.probeIntervalMs : models.discoveryIntervalMs;
      // lastProbeAt is when the previous poll ended, a little after its tick: allow for that, or every
      // poll would wait one tick too many.
      return now - last >= interval * 0.9;
    });
    return this.pollAll(due);
  }

  private async pollAll(endpoints: readonly Endpoint[]): Promise<void> {
    await Promise.allSettled(endpoints.filter((ep) => !this.polling.has(ep)).map((ep) => this.poll(ep)));
  }

  private async poll(ep: Endpoint): Promise<void> {
    const { forwarder, registry, logger, now } = this.options;
    if (this.lifetime.signal.aborted) return;
    // The provider's model list (Anthropic's, Gemini's…); none to ask for Azure, whose models are its
    // deployments: its health is what its requests tell.
    const list = providerOf(ep.config).models;
    if (list === undefined) return;
    // The request as operators read it in errors: this provider's path, without its query.
    const asked = `GET ${list.path.replace(/\?.*$/, '')}`;
    this.polling.add(ep);
    const timeoutMs = this.options.config.current.models.discoveryTimeoutMs;
    // One controller per poll, linked to the gateway's lifetime by a listener removed afterwards (a
    // composite signal on the long-lived lifetime signal would keep a reference per poll).
    const poll = new AbortController();
    const timeout = { aborted: false };
    const timer = setTimeout(() => {
      timeout.aborted = true;
      poll.abort();
    }, timeoutMs);
    const onStop = () => poll.abort();
    this.lifetime.signal.addEventListener('abort', onStop, { once: true });
    const signal = poll.signal;
    let failure: { kind: FailureKind; message: string } | undefined;
    let discoveryError: string | undefined;
    try {
      const res = await forwarder.send({
        endpoint: ep.config,
        method: 'GET',
        path: list.path,
        headers: { accept: 'application/json' },
        signal,
      });
      const text = await readBody(res.body, MAX_MODELS_BODY_BYTES, 'throw');
      const status = res.statusCode;
      const which = `endpoints[${registry.endpoints.indexOf(ep)}]`;
      if (status >= 500) {
        failure = { kind: 'server-error', message: `${asked} answered HTTP ${status}` };
      } else if (status === 401 || status === 403) {
        // The gateway's key for this endpoint is wrong: its requests would fail the same way.
        failure = {
          kind: 'misconfigured',
          message: `${asked} answered HTTP ${status}: check ${which}.apiKey`,
        };
      } else if (status >= 300 && status < 400) {
        failure = {
          kind: 'misconfigured',
          message: `${asked} answered a redirect (HTTP ${status}): check ${which}.url (https:// rather than http://?)`,
        };
      } else if (status !== 200) {
        // Alive, but no model list: not a health problem (some servers lack /v1/models), a discovery one.
        discoveryError =
          status === 404 && ep.config.models === undefined
            ? `${asked} answered HTTP 404: check ${which}.url (the base URL, without /v1), or give the endpoint a static models list`
            : `${asked} answered HTTP ${status}`;
      } else if (ep.config.models === undefined) {
        const listed = parseModels(text, list.items, asked);
        const before = [...ep.models].sort().join(',');
        registry.setDiscovered(ep, listed, now());
        if (before !== [...ep.models].sort().join(',')) {
          logger.info({ endpoint: ep.config.name, models: [...ep.models] }, 'endpoint models discovered');
        }
      }
    } catch (err) {
      if (this.lifetime.signal.aborted) return;
      if (timeout.aborted)
        failure = { kind: 'timeout', message: `${asked} did not answer within ${timeoutMs} ms` };
      else if (err instanceof DiscoveryError) discoveryError = err.message;
      else failure = { kind: 'connect', message: transportFailure(err).message };
    } finally {
      clearTimeout(timer);
      this.lifetime.signal.removeEventListener('abort', onStop);
      this.polling.delete(ep);
    }
    if (failure) registry.health.probeFailed(ep.health, failure.kind, failure.message);
    else registry.health.probeSucceeded(ep.health);
    const error = failure?.message ?? discoveryError;
    if (error !== undefined && ep.lastDiscoveryError !== error) {
      // The full URL probed: an operator can try it by hand (the config refuses credentials in URLs).
      logger.warn(
        { endpoint: ep.config.name, url: `${ep.config.url}${list.path}`, error },
        'endpoint probe failed',
      );
    }
    ep.lastDiscoveryError = error;
  }
}

class DiscoveryError extends Error {}

/** Fields of a listed model the gateway sets itself; the others are kept (bounded). */
const OWN_FIELDS = new Set(['id', 'object', 'owned_by']);
const MAX_META_FIELDS = 32;
const MAX_META_FIELD_CHARS = 4_096;

function parseModels(
  text: string,
  items: (json: unknown) => unknown[] | undefined,
  asked: string,
): ListedModel[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new DiscoveryError(`${asked} did not return JSON`);
  }
  const data = items(json);
  if (!Array.isArray(data)) throw new DiscoveryError(`${asked} returned no data array`);
  const seen = new Set<string>();
  const out: ListedModel[] = [];
  for (const item of data) {
    if (item === null || typeof item !== 'object') continue;
    const id = (item as { id?: unknown }).id;
    if (typeof id !== 'string' || id.trim() === '' || seen.has(id)) continue;
    seen.add(id);
    out.push({ id, meta: metaOf(item as Record<string, unknown>) });
  }
  return out;
}

/** What else the upstream said of a model: small fields only, so that a huge list cannot bloat memory. */
function metaOf(item: Record<string, unknown>): ModelMeta {
  const meta: Record<string, unknown> = {};
  let fields = 0;
  for (const [key, value] of Object.entries(item)) {
    if (OWN_FIELDS.has(key) || value === undefined) continue;
    if (typeof value === 'object' && value !== null && JSON.stringify(value).length > MAX_META_FIELD_CHARS)
      continue;
    if (typeof value === 'string' && value.length > MAX_META_FIELD_CHARS) continue;
    meta[key] = value;
    if (++fields >= MAX_META_FIELDS) break;
  }
  return meta;
}
