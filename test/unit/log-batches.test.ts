import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LineBatches, type Destination } from '../../src/observability/logger.js';

function destination() {
  const writes: string[] = [];
  /** The buffers as given, to check later that their bytes were left alone. */
  const given: Buffer[] = [];
  let flushed = 0;
  let syncFlushed = 0;
  const d: Destination = {
    write: (bytes: Buffer) => {
      given.push(bytes);
      writes.push(bytes.toString('utf8'));
      return true;
    },
    flush: (callback) => {
      flushed++;
      callback?.();
    },
    flushSync: () => {
      syncFlushed++;
    },
  };
  return { d, writes, given, flushes: () => ({ flushed, syncFlushed }) };
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

  it('keeps text exact across chunks: non-ASCII lines, a line longer than a chunk, bytes never reused', () => {
    const a = destination();
    const batches = new LineBatches([a.d]);
    const expected: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const line = `{"n":${i},"msg":"héllo wörld ✓ ${'x'.repeat(i % 50)}"}\n`;
      expected.push(line);
      batches.write(line);
      if (i % 700 === 0) vi.advanceTimersByTime(20);
    }
    const long = `${'é'.repeat(70_000)}\n`;
    expected.push(long);
    batches.write(long);
    batches.write('after\n');
    expected.push('after\n');
    vi.advanceTimersByTime(20);
    expect(a.writes.join('')).toBe(expected.join(''));
    // Every buffer handed over still holds what it held then.
    expect(a.given.map((b) => b.toString('utf8'))).toEqual(a.writes);
  });

  it('flush(callback) calls back once every destination has flushed; a dropped destination gets nothing more', () => {
    const a = destination();
    const b = destination();
    const batches = new LineBatches([a.d, b.d]);
    batches.write('one\n');
    let called = 0;
    batches.flush(() => called++);
    expect(called).toBe(1);
    expect(a.flushes().flushed).toBe(1);
    expect(b.flushes().flushed).toBe(1);
    expect(batches.drop(b.d)).toBe(true);
    expect(batches.drop(b.d)).toBe(false);
    batches.write('two\n');
    batches.flushSync();
    expect(a.writes).toEqual(['one\n', 'two\n']);
    expect(b.writes).toEqual(['one\n']);
    expect(b.flushes().syncFlushed).toBe(0);
    batches.drop(a.d);
    batches.flush(() => called++);
    expect(called).toBe(2);
  });
});
