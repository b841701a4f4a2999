import type { ConfigSource } from '../config/config-store.js';
import type { Endpoint, EndpointRegistry } from './endpoint-registry.js';
import { orderByLeastOutstanding, orderByPriorityAndWeight } from './selector.js';

export interface PickOptions {
  model: string;
  /** Endpoints barred for the rest of this request (bad key, model missing). */
  excluded: ReadonlySet<string>;
  /** Endpoints this request already tried: untried ones come first. */
  tried: ReadonlySet<string>;
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

  pick({ model, excluded, tried }: PickOptions): Endpoint | undefined {
    const now = this.deps.now();
    const usable = this.deps.registry
      .serving(model)
      .filter(
        (ep) => !excluded.has(ep.config.name) && ep.health.availableAt(now, ep.config.maxConcurrent) <= now,
      );
    const untried = usable.filter((ep) => !tried.has(ep.config.name));
    const pool = untried.length > 0 ? untried : usable;
    const candidates = pool.map((ep) => ({
      ep,
      priority: ep.config.priority,
      weight: ep.config.weight,
      inFlight: ep.health.inFlight,
      ewmaTtfbMs: ep.health.ewmaTtfbMs,
    }));
    const order =
      this.deps.config.current.routing.strategy === 'least-outstanding'
        ? orderByLeastOutstanding(candidates, this.deps.random)
        : orderByPriorityAndWeight(candidates, this.deps.random);
    return order[0]?.ep;
  }

  /** Milliseconds until some not-excluded, non-drained endpoint of the model may take a request. */
  msUntilRecovery(model: string, excluded: ReadonlySet<string>): number | undefined {
    const now = this.deps.now();
    let soonest: number | undefined;
    for (const ep of this.deps.registry.serving(model)) {
      if (excluded.has(ep.config.name) || !(ep.config.weight > 0)) continue;
      const at = ep.health.availableAt(now, ep.config.maxConcurrent);
      soonest = soonest === undefined ? at : Math.min(soonest, at);
    }
    return soonest === undefined ? undefined : Math.max(0, soonest - now);
  }
}
