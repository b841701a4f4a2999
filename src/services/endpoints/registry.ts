import type { EndpointConfig } from '../../config/types.js';
import type { EndpointHealth, HealthMonitor } from './health.js';

/** Runtime view of one configured endpoint: its config, the models it serves now, and its health. */
export interface Endpoint {
  /** Replaced on a configuration reload; requests in flight keep the object they picked. */
  config: EndpointConfig;
  readonly health: EndpointHealth;
  /**
   * Models this endpoint serves, by their public ids (its `modelNames` applied): the static list, or
   * the last successful discovery.
   */
  models: ReadonlySet<string>;
  /** What the endpoint's /v1/models said of each model besides its id (vLLM's max_model_len…). */
  modelMeta: ReadonlyMap<string, ModelMeta>;
  /** True once the model list is known (static, or discovered at least once). */
  modelsKnown: boolean;
  lastDiscoveryError: string | undefined;
  lastDiscoveryAt: number | undefined;
}

/** A model's fields in an upstream's /v1/models, other than those the gateway sets. */
export type ModelMeta = Readonly<Record<string, unknown>>;

/** One model as an upstream listed it. */
export interface ListedModel {
  id: string;
  meta: ModelMeta;
}

export interface ModelInfo {
  id: string;
  /** Unix seconds: the upstream's `created`, else when the gateway first saw the model. */
  created: number;
  /** The first serving endpoint's other fields for it (vLLM's max_model_len, root…). */
  meta: ModelMeta;
}

const NO_META: ReadonlyMap<string, ModelMeta> = new Map();

/**
 * The public ids of the models an endpoint lists: an id named in its `modelNames` (as the upstream's
 * own) is served under the public id it is given there.
 */
export function publicIds(config: EndpointConfig, listed: readonly string[]): string[] {
  const names = config.modelNames;
  if (!names) return [...new Set(listed)];
  const byUpstream = new Map(Object.entries(names).map(([pub, upstream]) => [upstream, pub]));
  return [...new Set(listed.map((id) => byUpstream.get(id) ?? id))];
}

/** The id this endpoint knows a public model by (its `modelNames`), when it differs. */
export function upstreamModelId(config: EndpointConfig, model: string): string | undefined {
  const upstream = config.modelNames?.[model];
  return upstream !== undefined && upstream !== model ? upstream : undefined;
}

export interface RegistryChange {
  added: string[];
  removed: string[];
  changed: string[];
}

const MAX_CACHED_MODELS = 1_000;

/** The set of endpoints and which models each serves. */
export class EndpointRegistry {
  private list: Endpoint[];
  private readonly firstSeen = new Map<string, number>();
  /** serving() per model, recomputed only after endpoints or their model lists change. */
  private readonly servingCache = new Map<string, readonly Endpoint[]>();

  constructor(
    configs: readonly EndpointConfig[],
    readonly health: HealthMonitor,
  ) {
    this.list = configs.map((config) => this.create(config));
  }

  get endpoints(): readonly Endpoint[] {
    return this.list;
  }

  /**
   * Applies a new endpoint list: endpoints are matched by name and keep their health and discovered
   * models (unless their URL changed); new ones are added, missing ones removed. Requests in flight hold
   * their Endpoint object and finish undisturbed.
   */
  update(configs: readonly EndpointConfig[]): RegistryChange {
    const previous = new Map(this.list.map((ep) => [ep.config.name, ep]));
    const change: RegistryChange = { added: [], removed: [], changed: [] };
    this.list = configs.map((config) => {
      const ep = previous.get(config.name);
      if (!ep) {
        change.added.push(config.name);
        return this.create(config);
      }
      previous.delete(config.name);
      const old = ep.config;
      if (JSON.stringify(old) !== JSON.stringify(config)) change.changed.push(config.name);
      ep.config = config;
      if (config.models !== undefined) {
        ep.models = new Set(publicIds(config, config.models));
        ep.modelsKnown = true;
        this.noteModels(ep.models);
      } else if (
        old.models !== undefined ||
        old.url !== config.url ||
        JSON.stringify(old.modelNames) !== JSON.stringify(config.modelNames)
      ) {
        // Newly discovered, another server behind the name, or other names: unknown until polled.
        ep.models = new Set();
        ep.modelMeta = NO_META;
        ep.modelsKnown = false;
      }
      return ep;
    });
    for (const name of previous.keys()) {
      change.removed.push(name);
      this.health.forget(name);
    }
    this.servingCache.clear();
    return change;
  }

  private create(config: EndpointConfig): Endpoint {
    const ep: Endpoint = {
      config,
      health: this.health.get(config.name),
      models: new Set(publicIds(config, config.models ?? [])),
      modelMeta: NO_META,
      modelsKnown: config.models !== undefined,
      lastDiscoveryError: undefined,
      lastDiscoveryAt: undefined,
    };
    this.noteModels(ep.models);
    return ep;
  }

  /** Endpoints that serve `model` right now (whatever their health). Asked on every request: cached. */
  serving(model: string): readonly Endpoint[] {
    let list = this.servingCache.get(model);
    if (!list) {
      list = this.endpoints.filter((ep) => ep.models.has(model));
      // Bounded: clients may ask for any number of made-up models.
      if (this.servingCache.size >= MAX_CACHED_MODELS) this.servingCache.clear();
      this.servingCache.set(model, list);
    }
    return list;
  }

  /** Whether some endpoint's model list is still unknown (down at boot, or first discovery pending). */
  hasUnknownModels(): boolean {
    return this.endpoints.some((ep) => !ep.modelsKnown && ep.config.weight > 0);
  }

  /** A successful poll of a discovered endpoint: the models it lists, by their upstream ids. */
  setDiscovered(ep: Endpoint, listed: readonly ListedModel[], now: number): void {
    const ids = publicIds(
      ep.config,
      listed.map((m) => m.id),
    );
    const meta = new Map<string, ModelMeta>();
    listed.forEach((m) => {
      const id = publicIds(ep.config, [m.id])[0]!;
      if (!meta.has(id)) meta.set(id, m.meta);
    });
    ep.models = new Set(ids);
    ep.modelMeta = meta;
    ep.modelsKnown = true;
    ep.lastDiscoveryError = undefined;
    ep.lastDiscoveryAt = now;
    this.noteModels(ep.models);
    this.servingCache.clear();
  }

  /** An upstream said 404 for a model it listed: stop routing it there until discovery lists it again. */
  removeModel(ep: Endpoint, model: string): void {
    if (ep.config.models !== undefined || !ep.models.has(model)) return;
    const next = new Set(ep.models);
    next.delete(model);
    ep.models = next;
    this.servingCache.clear();
  }

  /** Union of all endpoints' models, in endpoint order, each with the first serving endpoint's fields. */
  listModels(): ModelInfo[] {
    const seen = new Set<string>();
    const out: ModelInfo[] = [];
    for (const ep of this.endpoints) {
      for (const id of ep.models) {
        if (seen.has(id)) continue;
        seen.add(id);
        const meta = ep.modelMeta.get(id) ?? {};
        const created =
          typeof meta.created === 'number' && Number.isFinite(meta.created) ? meta.created : undefined;
        out.push({ id, created: created ?? this.firstSeen.get(id) ?? 0, meta });
      }
    }
    return out;
  }

  private noteModels(models: Iterable<string>): void {
    const nowSeconds = Math.floor(this.health.now() / 1000);
    for (const id of models) if (!this.firstSeen.has(id)) this.firstSeen.set(id, nowSeconds);
  }
}
