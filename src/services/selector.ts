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

export function orderByPriorityAndWeight<T extends Weighted>(items: readonly T[], random: () => number): T[] {
  const tiers = new Map<number, T[]>();
  for (const item of items) {
    if (!(item.weight > 0)) continue;
    const tier = tiers.get(item.priority);
    if (tier) tier.push(item);
    else tiers.set(item.priority, [item]);
  }
  const ordered: T[] = [];
  for (const priority of [...tiers.keys()].sort((a, b) => a - b)) {
    ordered.push(...weightedPermutation(tiers.get(priority) ?? [], random));
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
