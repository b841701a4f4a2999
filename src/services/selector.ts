/**
 * Endpoint selection, a pure function of its inputs (randomness injected).
 *
 * Priority tiers come first: every endpoint of the lowest priority number is ordered before any endpoint
 * of the next tier. Within a tier the order is a weighted random permutation (weighted sampling without
 * replacement), so the first pick splits traffic by weight and the later picks are the failover order.
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

export function orderByPriorityAndWeight<T extends Weighted>(items: readonly T[], random: () => number): T[] {
  return orderTiers(items, (tier) => weightedPermutation(tier, random));
}

/**
 * `least-outstanding`: priority tiers as above; within a tier, power of two choices: of two endpoints
 * drawn at random, the one with fewer requests in flight per unit of weight goes first, EWMA time to
 * first byte breaking ties. Cheap, and it steers traffic away from a slow endpoint whose requests pile up.
 */
export function orderByLeastOutstanding<T extends LoadAware>(items: readonly T[], random: () => number): T[] {
  return orderTiers(items, (tier) => {
    const remaining = [...tier];
    const out: T[] = [];
    while (remaining.length > 1) {
      const i = Math.floor(random() * remaining.length);
      let j = Math.floor(random() * (remaining.length - 1));
      if (j >= i) j++;
      const index = lessLoaded(remaining[i]!, remaining[j]!) ? i : j;
      out.push(...remaining.splice(index, 1));
    }
    out.push(...remaining);
    return out;
  });
}

function lessLoaded(a: LoadAware, b: LoadAware): boolean {
  const loadA = (a.inFlight + 1) / a.weight;
  const loadB = (b.inFlight + 1) / b.weight;
  if (loadA !== loadB) return loadA < loadB;
  return (a.ewmaTtfbMs ?? 0) <= (b.ewmaTtfbMs ?? 0);
}

/**
 * The first endpoint orderByPriorityAndWeight would give for the same random numbers, without ordering
 * the rest: what a pick needs. Undefined when every endpoint is drained.
 */
export function firstByPriorityAndWeight<T extends Weighted>(
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

/** The first endpoint orderByLeastOutstanding would give for the same random numbers. */
export function firstByLeastOutstanding<T extends LoadAware>(
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

/** The endpoints of the lowest priority number among those not drained, in their given order. */
function bestTier<T extends Weighted>(items: readonly T[]): T[] {
  let best = Number.POSITIVE_INFINITY;
  for (const item of items) if (item.weight > 0 && item.priority < best) best = item.priority;
  return items.filter((item) => item.weight > 0 && item.priority === best);
}

function orderTiers<T extends Weighted>(items: readonly T[], orderTier: (tier: T[]) => T[]): T[] {
  const tiers = new Map<number, T[]>();
  for (const item of items) {
    if (!(item.weight > 0)) continue;
    const tier = tiers.get(item.priority);
    if (tier) tier.push(item);
    else tiers.set(item.priority, [item]);
  }
  const ordered: T[] = [];
  for (const priority of [...tiers.keys()].sort((a, b) => a - b)) {
    ordered.push(...orderTier(tiers.get(priority) ?? []));
  }
  return ordered;
}

function weightedPermutation<T extends Weighted>(tier: readonly T[], random: () => number): T[] {
  const remaining = [...tier];
  const out: T[] = [];
  let total = remaining.reduce((sum, item) => sum + item.weight, 0);
  while (remaining.length > 0) {
    let target = random() * total;
    let index = remaining.length - 1;
    for (let i = 0; i < remaining.length; i++) {
      target -= remaining[i]!.weight;
      if (target < 0) {
        index = i;
        break;
      }
    }
    const [picked] = remaining.splice(index, 1);
    total -= picked!.weight;
    out.push(picked!);
  }
  return out;
}
