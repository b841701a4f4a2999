/**
 * Endpoint selection, a pure function of its inputs (randomness injected).
 *
 * Priority tiers come first: an endpoint of the lowest priority number is picked before any endpoint
 * of the next tier. Within a tier the pick is random by weight, so traffic splits by weight; the
 * failover order follows from picking again among the endpoints a request has not tried yet.
 * Weight 0 drains an endpoint: it is never picked.
 */
export interface Weighted {
  readonly priority: number;
  readonly weight: number;
}

export interface LoadAware extends Weighted {
  readonly inFlight: number;
  /** EWMA time to first byte; unknown counts as 0 so that new endpoints get tried. */
  readonly ewmaTtfbMs: number | undefined;
}

/** `weighted`: one weighted random draw in the best tier. Undefined when every endpoint is drained. */
export function pickByPriorityAndWeight<T extends Weighted>(
  items: readonly T[],
  random: () => number,
): T | undefined {
  const tier = bestTier(items);
  if (tier.length <= 1) return tier[0];
  let total = 0;
  for (const item of tier) total += item.weight;
  let target = random() * total;
  for (const item of tier) {
    target -= item.weight;
    if (target < 0) return item;
  }
  return tier[tier.length - 1];
}

/**
 * `least-outstanding`: power of two choices in the best tier: of two endpoints drawn at random, the one
 * with fewer requests in flight per unit of weight, EWMA time to first byte breaking ties. Cheap, and
 * it steers traffic away from a slow endpoint whose requests pile up.
 */
export function pickByLeastOutstanding<T extends LoadAware>(
  items: readonly T[],
  random: () => number,
): T | undefined {
  const tier = bestTier(items);
  if (tier.length <= 1) return tier[0];
  const i = Math.floor(random() * tier.length);
  let j = Math.floor(random() * (tier.length - 1));
  if (j >= i) j++;
  return lessLoaded(tier[i]!, tier[j]!) ? tier[i] : tier[j];
}

function lessLoaded(a: LoadAware, b: LoadAware): boolean {
  const loadA = (a.inFlight + 1) / a.weight;
  const loadB = (b.inFlight + 1) / b.weight;
  if (loadA !== loadB) return loadA < loadB;
  return (a.ewmaTtfbMs ?? 0) <= (b.ewmaTtfbMs ?? 0);
}

/** The endpoints of the lowest priority number among those not drained, in their given order. */
function bestTier<T extends Weighted>(items: readonly T[]): T[] {
  let best = Number.POSITIVE_INFINITY;
  for (const item of items) if (item.weight > 0 && item.priority < best) best = item.priority;
  return items.filter((item) => item.weight > 0 && item.priority === best);
}
