import type { ConfigSource } from '../../config/config-store.js';
import type { Endpoint, EndpointRegistry } from '../endpoints/registry.js';
import { pickByLeastOutstanding, pickByPriorityAndWeight } from './selector.js';
import { SessionAffinity } from './session-affinity.js';

export interface PickOptions {
  model: string;
  /** Endpoints barred for the rest of this request (bad key, model missing). */
  excluded: readonly string[];
  /** Endpoints this request already tried: untried ones come first. */
  tried: readonly string[];
  /** Session id for affinity (first attempt only), when affinity is configured. */
  sessionKey?: string | undefined;
  /** An endpoint the request asked for (`x-gateway.endpoint`): first, when it serves the model and can take it. */
  preferred?: string | undefined;
}

/**
 * Chooses the next endpoint for a model among those that can take a request now, with the configured
 * strategy. Untried endpoints go first; when every usable one has been tried, they may be tried again.
 */
export class EndpointPicker {
  constructor(
    private readonly deps: {
      registry: EndpointRegistry;
      config: ConfigSource;
      random: () => number;
      now: () => number;
    },
  ) {}

  private readonly affinity = new SessionAffinity();

  pick({ model, excluded, tried, sessionKey, preferred }: PickOptions): Endpoint | undefined {
    const now = this.deps.now();
    const serving = this.deps.registry.serving(model);
    const canTake = (ep: Endpoint) =>
      !excluded.includes(ep.config.name) && ep.health.availableAt(now, ep.config.maxConcurrent) <= now;
    if (preferred !== undefined && tried.length === 0) {
      const asked = serving.find((ep) => ep.config.name === preferred);
      if (asked && asked.config.weight > 0 && canTake(asked)) return asked;
    }
    // The common deployment, one endpoint for a model: nothing to choose between.
    if (serving.length === 1) {
      const only = serving[0]!;
      return only.config.weight > 0 && canTake(only) ? only : undefined;
    }
    const affinity = this.deps.config.current.routing.affinity;
    if (affinity && sessionKey !== undefined && tried.length === 0) {
      const sticky = this.sticky(sessionKey, serving.filter(canTake), affinity.loadFactor);
      if (sticky) return sticky;
    }
    // Untried endpoints first; once every usable one has been tried, any of them again.
    const untriedLeft =
      tried.length > 0 &&
      serving.some((ep) => ep.config.weight > 0 && !tried.includes(ep.config.name) && canTake(ep));
    const eligible =
      tried.length === 0 || !untriedLeft
        ? canTake
        : (ep: Endpoint) => !tried.includes(ep.config.name) && canTake(ep);
    return this.deps.config.current.routing.strategy === 'least-outstanding'
      ? pickByLeastOutstanding(serving, this.deps.random, eligible)
      : pickByPriorityAndWeight(serving, this.deps.random, eligible);
  }

  /** Affinity applies within the best priority tier that can take the request. */
  private sticky(sessionKey: string, usable: readonly Endpoint[], loadFactor: number): Endpoint | undefined {
    const live = usable.filter((ep) => ep.config.weight > 0);
    if (live.length === 0) return undefined;
    const best = Math.min(...live.map((ep) => ep.config.priority));
    const tier = live
      .filter((ep) => ep.config.priority === best)
      .map((ep) => ({ ep, name: ep.config.name, weight: ep.config.weight, inFlight: ep.health.inFlight }));
    return this.affinity.choose(sessionKey, tier, loadFactor)?.ep;
  }

  /** Milliseconds until some not-excluded, non-drained endpoint of the model may take a request. */
  msUntilRecovery(model: string, excluded: readonly string[]): number | undefined {
    const now = this.deps.now();
    let soonest: number | undefined;
    for (const ep of this.deps.registry.serving(model)) {
      if (excluded.includes(ep.config.name) || !(ep.config.weight > 0)) continue;
      const at = ep.health.availableAt(now, ep.config.maxConcurrent);
      soonest = soonest === undefined ? at : Math.min(soonest, at);
    }
    return soonest === undefined ? undefined : Math.max(0, soonest - now);
  }
}
