/**
 * Session affinity for prefix caches: requests of one session (an `x-session-id` header or the `user`
 * field) go to the same endpoint, so that its KV/prefix cache is reused.
 *
 * Placement is consistent hashing with bounded loads (Mirrokni et al., "Consistent Hashing with Bounded
 * Loads", 2016): a session's point on a ring of weighted virtual nodes picks its endpoint, but an endpoint
 * already carrying more than `loadFactor` times the average load is skipped for the next one on the ring,
 * so one hot session cannot overload an endpoint. A session's placement is remembered: when its endpoint
 * becomes unavailable the session moves, and it stays on its new endpoint after the old one recovers (the
 * new one now holds its cache).
 */
export interface AffinityCandidate {
  readonly name: string;
  readonly weight: number;
  readonly inFlight: number;
}

const VNODES_PER_WEIGHT_UNIT = 64;
const MAX_RINGS = 64;

export class SessionAffinity {
  private readonly placements = new Map<string, string>();
  private readonly rings = new Map<string, Array<{ point: number; name: string }>>();

  constructor(private readonly maxSessions = 100_000) {}

  /** The endpoint for this session among `candidates` (one priority tier, all usable now). */
  choose<T extends AffinityCandidate>(
    sessionKey: string,
    candidates: readonly T[],
    loadFactor: number,
  ): T | undefined {
    if (candidates.length === 0) return undefined;
    const totalInFlight = candidates.reduce((sum, c) => sum + c.inFlight, 0);
    // Capacity per endpoint, in proportion to its weight.
    const totalWeight = candidates.reduce((sum, c) => sum + c.weight, 0);
    const capacity = (c: T) => Math.ceil((loadFactor * (totalInFlight + 1) * c.weight) / totalWeight);
    const byName = new Map(candidates.map((c) => [c.name, c]));

    const home = byName.get(this.placements.get(sessionKey) ?? '');
    if (home && home.inFlight < capacity(home)) {
      this.remember(sessionKey, home.name);
      return home;
    }
    let fallback: T | undefined;
    for (const name of this.walk(sessionKey, candidates)) {
      const c = byName.get(name)!;
      if (c.inFlight < capacity(c)) {
        // Over-full home: this request spills, the session keeps its home. Missing home: the session moves.
        if (!home) this.remember(sessionKey, c.name);
        return c;
      }
      if (!fallback || c.inFlight / c.weight < fallback.inFlight / fallback.weight) fallback = c;
    }
    return fallback;
  }

  /** Where a session is placed now (for status and tests). */
  placementOf(sessionKey: string): string | undefined {
    return this.placements.get(sessionKey);
  }

  /** Distinct endpoint names in ring order, starting at the session's point. */
  private *walk(sessionKey: string, candidates: readonly AffinityCandidate[]): Generator<string> {
    const ring = this.ring(candidates);
    const point = fnv1a(sessionKey);
    let lo = 0;
    let hi = ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ring[mid]!.point < point) lo = mid + 1;
      else hi = mid;
    }
    const seen = new Set<string>();
    for (let i = 0; i < ring.length && seen.size < candidates.length; i++) {
      const { name } = ring[(lo + i) % ring.length]!;
      if (seen.has(name)) continue;
      seen.add(name);
      yield name;
    }
  }

  private ring(candidates: readonly AffinityCandidate[]): Array<{ point: number; name: string }> {
    const key = candidates
      .map((c) => `${c.name}:${c.weight}`)
      .sort()
      .join('|');
    let ring = this.rings.get(key);
    if (ring) return ring;
    const maxWeight = Math.max(...candidates.map((c) => c.weight));
    ring = [];
    for (const c of candidates) {
      const vnodes = Math.max(1, Math.round((VNODES_PER_WEIGHT_UNIT * c.weight) / maxWeight));
      for (let v = 0; v < vnodes; v++) ring.push({ point: fnv1a(`${c.name}#${v}`), name: c.name });
    }
    ring.sort((a, b) => a.point - b.point);
    if (this.rings.size >= MAX_RINGS) this.rings.clear();
    this.rings.set(key, ring);
    return ring;
  }

  private remember(sessionKey: string, name: string): void {
    // Map order is insertion order: re-inserting makes this the most recently used session.
    this.placements.delete(sessionKey);
    this.placements.set(sessionKey, name);
    if (this.placements.size > this.maxSessions) {
      const oldest = this.placements.keys().next().value;
      if (oldest !== undefined) this.placements.delete(oldest);
    }
  }
}

/** FNV-1a, 32 bits, with murmur3's finaliser so that keys differing in one character spread evenly. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}
