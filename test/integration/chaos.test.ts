import { describe, expect, it } from 'vitest';
import { runChaos } from '../helpers/chaos.js';

describe('chaos (issue 9): one endpoint of three fails a third of the time with every fault', () => {
  it('every answer arrives whole: none corrupted, none unreadable, no error the gateway could repair', async () => {
    const result = await runChaos({ requests: 400, concurrency: 16, seed: 9 });
    expect(result.corrupted).toEqual([]);
    expect(result.unreadable).toEqual([]);
    expect(result.visibleErrors).toEqual([]);
    expect(result.whole).toBe(400);
    // The run did exercise the faults.
    expect(Object.values(result.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(40);
    expect(Object.keys(result.faults).length).toBeGreaterThanOrEqual(12);
  }, 60_000);
});
