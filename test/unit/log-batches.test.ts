import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LineBatches, type Destination } from '../../src/observability/logger.js';

function destination() {
  const writes: string[] = [];
  let flushed = 0;
  let syncFlushed = 0;
  const d: Destination = {
    write: (s: string) => {
      writes.push(s);
      return true;
    },
    flush: () => {
      flushed++;
    },
    flushSync: () => {
      syncFlushed++;
    },
  };
  return { d, writes, flushes: () => ({ flushed, syncFlushed }) };
}

describe('LineBatches', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('writes the lines of a batch together, to every destination, within 20 ms', () => {
    const a = destination();
    const b = destination();
    const batches = new LineBatches([a.d, b.d]);
    batches.write('one\n');
    batches.write('two\n');
    batches.write('three\n');
    expect(a.writes).toEqual([]);
    vi.advanceTimersByTime(20);
    expect(a.writes).toEqual(['one\ntwo\nthree\n']);
    expect(b.writes).toEqual(['one\ntwo\nthree\n']);
    batches.write('four\n');
    vi.advanceTimersByTime(20);
    expect(a.writes).toEqual(['one\ntwo\nthree\n', 'four\n']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('flush() writes at once, flushSync() also flushes the destinations synchronously (exit)', () => {
    const a = destination();
    const batches = new LineBatches([a.d]);
    batches.write('x\n');
    batches.flush();
    expect(a.writes).toEqual(['x\n']);
    expect(a.flushes().flushed).toBe(1);
    batches.write('y\n');
    batches.flushSync();
    expect(a.writes).toEqual(['x\n', 'y\n']);
    expect(a.flushes().syncFlushed).toBe(1);
    // Nothing is written twice when the batch timer fires after a flush.
    vi.advanceTimersByTime(50);
    expect(a.writes).toEqual(['x\n', 'y\n']);
  });
});
