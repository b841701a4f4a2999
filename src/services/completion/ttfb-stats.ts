/** Recent times to first byte per model, for a hedge delay that follows the pool's own p95. */
export class TtfbStats {
  /** Per model, the last `windowSize` samples in a ring. */
  private readonly samples = new Map<string, { values: number[]; next: number }>();

  constructor(
    private readonly windowSize = 200,
    private readonly minSamples = 20,
  ) {}

  record(model: string, ms: number): void {
    let ring = this.samples.get(model);
    if (!ring) {
      ring = { values: [], next: 0 };
      this.samples.set(model, ring);
    }
    if (ring.values.length < this.windowSize) ring.values.push(ms);
    else ring.values[ring.next] = ms;
    ring.next = (ring.next + 1) % this.windowSize;
  }

  /** The 95th percentile of the recent samples, or undefined while there are too few to trust. */
  p95(model: string): number | undefined {
    const values = this.samples.get(model)?.values;
    if (!values || values.length < this.minSamples) return undefined;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)];
  }
}
