/** Recent times to first byte per model, for a hedge delay that follows the pool's own p95. */
export class TtfbStats {
  private readonly samples = new Map<string, number[]>();

  constructor(
    private readonly windowSize = 200,
    private readonly minSamples = 20,
  ) {}

  record(model: string, ms: number): void {
    let list = this.samples.get(model);
    if (!list) {
      list = [];
      this.samples.set(model, list);
    }
    list.push(ms);
    if (list.length > this.windowSize) list.shift();
  }

  /** The 95th percentile of the recent samples, or undefined while there are too few to trust. */
  p95(model: string): number | undefined {
    const list = this.samples.get(model);
    if (!list || list.length < this.minSamples) return undefined;
    const sorted = [...list].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)];
  }
}
