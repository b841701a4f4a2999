/**
 * Endpoint selection, a pure function of its inputs (randomness injected).
 *
 * Priority tiers come first: an endpoint of the lowest priority number is picked before any endpoint
 * of the next tier. Within a tier the pick is random by weight, so traffic splits by weight; the
 * failover order follows from picking again among the endpoints a request has not tried yet.
 * Weight 0 drains an endpoint: it is never picked. A pick walks the candidates a few times and
 * allocates nothing: it runs for every attempt of every request.
 */
export interface Weighted {
  readonly priority: number;
  readonly weight: number;
}

/** What a pick needs of an endpoint (the registry's Endpoint fits as it is). */
export interface Candidate {
  readonly config: Weighted;
  readonly health: {
    readonly inFlight: number;
    /** EWMA time to first byte; unknown counts as 0 so that new endpoints get tried. */
    readonly ewmaTtfbMs: number | undefined;
  };
}

const everyone = () => true;

/** `weighted`: one weighted random draw in the best tier. Undefined when no endpoint can be picked. */
export function pickByPriorityAndWeight<T extends Candidate>(
  items: readonly T[],
  random: () => number,
  eligible: (item: T) => boolean = everyone,
): T | undefined {
  const tier = bestTier(items, eligible);
  if (tier === undefined) return undefined;
  let total = 0;
  let count = 0;
  let last: T | undefined;
  for (const item of items) {
    if (!inTier(item, tier, eligible)) continue;
    total += item.config.weight;
    count++;
    last = item;
  }
  if (count === 1) return last;
  let target = random() * total;
  for (const item of items) {
    if (!inTier(item, tier, eligible)) continue;
    target -= item.config.weight;
    if (target < 0) return item;
  }
  return last;
}

/**
 * `least-outstanding`: power of two choices in the best tier: of two endpoints drawn at random, the one
 * with fewer requests in flight per unit of weight, EWMA time to first byte breaking ties. Cheap, and
 * it steers traffic away from a slow endpoint whose requests pile up.
 */
export function pickByLeastOutstanding<T extends Candidate>(
  items: readonly T[],
  random: () => number,
  eligible: (item: T) => boolean = everyone,
): T | undefined {
  const tier = bestTier(items, eligible);
  if (tier === undefined) return undefined;
  let count = 0;
  for (const item of items) if (inTier(item, tier, eligible)) count++;
  const first = nth(items, tier, eligible, 0);
  if (count === 1) return first;
  const i = Math.floor(random() * count);
  let j = Math.floor(random() * (count - 1));
  if (j >= i) j++;
  const a = nth(items, tier, eligible, i)!;
  const b = nth(items, tier, eligible, j)!;
  return lessLoaded(a, b) ? a : b;
}

function lessLoaded(a: Candidate, b: Candidate): boolean {
  const loadA = (a.health.inFlight + 1) / a.config.weight;
  const loadB = (b.health.inFlight + 1) / b.config.weight;
  if (loadA !== loadB) return loadA < loadB;
  return (a.health.ewmaTtfbMs ?? 0) <= (b.health.ewmaTtfbMs ?? 0);
}

/** The lowest priority number among the eligible endpoints that are not drained. */
function bestTier<T extends Candidate>(
  items: readonly T[],
  eligible: (item: T) => boolean,
): number | undefined {
  let best: number | undefined;
  for (const item of items) {
    const { priority, weight } = item.config;
    if (weight > 0 && (best === undefined || priority < best) && eligible(item)) best = priority;
  }
  return best;
}

function inTier<T extends Candidate>(item: T, tier: number, eligible: (item: T) => boolean): boolean {
  return item.config.priority === tier && item.config.weight > 0 && eligible(item);
}

/** The n-th (0-based) endpoint of the tier, in the given order. */
function nth<T extends Candidate>(
  items: readonly T[],
  tier: number,
  eligible: (item: T) => boolean,
  n: number,
): T | undefined {
  let seen = 0;
  for (const item of items) {
    if (!inTier(item, tier, eligible)) continue;
    if (seen === n) return item;
    seen++;
  }
  return undefined;
}
