import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AttemptTimeoutReason } from '../../src/services/core/abort-reasons.js';
import { PhaseTimer } from '../../src/services/core/phase-timer.js';

/** A timer that records the phase timeouts it reports (its deadline goes unreported). */
function timer() {
  const fired: AttemptTimeoutReason[] = [];
  return {
    t: new PhaseTimer({ onPhaseTimeout: (r) => fired.push(r), onDeadline: () => undefined }),
    fired,
  };
}

describe('PhaseTimer', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('fires once for a phase without progress, naming the phase', () => {
    const { t, fired } = timer();
    t.arm('first-byte', 100);
    vi.advanceTimersByTime(99);
    expect(fired).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(fired.map((r) => [r.phase, r.timeoutMs])).toEqual([['first-byte', 100]]);
    vi.advanceTimersByTime(1000);
    expect(fired).toHaveLength(1);
  });

  it('counts the idle timeout from the last progress, with one timer per period', () => {
    const { t, fired } = timer();
    t.arm('idle', 100);
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(60);
      t.arm('idle', 100); // a chunk
    }
    expect(fired).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(99);
    expect(fired).toHaveLength(0);
    vi.advanceTimersByTime(2);
    expect(fired.map((r) => r.phase)).toEqual(['idle']);
  });

  it('starts over on a phase change and stops when cleared', () => {
    const { t, fired } = timer();
    t.arm('first-byte', 100);
    vi.advanceTimersByTime(90);
    t.arm('idle', 50);
    vi.advanceTimersByTime(40);
    expect(fired).toHaveLength(0);
    vi.advanceTimersByTime(10);
    expect(fired.map((r) => r.phase)).toEqual(['idle']);
    t.arm('idle', 50);
    t.clear();
    vi.advanceTimersByTime(1000);
    expect(fired).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('PhaseTimer deadline', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('calls the deadline whatever the phase, and no phase timeout after it', () => {
    const fired: string[] = [];
    const t = timerLogging(fired);
    t.setDeadline(performance.now() + 250);
    t.arm('idle', 100);
    for (let i = 0; i < 4; i++) {
      vi.advanceTimersByTime(60);
      t.touch();
    }
    expect(fired).toEqual([]);
    // The stream keeps making progress, yet at 250 ms the deadline comes.
    vi.advanceTimersByTime(10);
    expect(fired).toEqual(['deadline']);
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual(['deadline']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps the deadline while the phase is suspended', () => {
    const fired: string[] = [];
    const t = timerLogging(fired);
    t.setDeadline(performance.now() + 500);
    t.arm('idle', 100);
    t.suspend();
    vi.advanceTimersByTime(400);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(['deadline']);
  });

  it('fires the phase before a later deadline, then still the deadline', () => {
    const fired: string[] = [];
    const t = timerLogging(fired);
    t.setDeadline(performance.now() + 500);
    t.arm('first-byte', 100);
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(['first-byte']);
    vi.advanceTimersByTime(400);
    expect(fired).toEqual(['first-byte', 'deadline']);
  });
});

function timerLogging(fired: string[]): PhaseTimer {
  return new PhaseTimer({
    onPhaseTimeout: (r) => fired.push(r.phase),
    onDeadline: () => fired.push('deadline'),
  });
}

describe('PhaseTimer scheduling', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('keeps the armed timer when the due time moves later, and still fires on time', () => {
    const { t, fired } = timer();
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    t.arm('first-byte', 100);
    t.setDeadline(performance.now() + 10_000);
    vi.advanceTimersByTime(10);
    t.arm('idle', 200); // due at 210, later than the armed 100
    expect(setTimeoutSpy).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(100); // the early timer re-arms for the idle phase
    expect(fired).toHaveLength(0);
    vi.advanceTimersByTime(99);
    expect(fired).toHaveLength(0);
    vi.advanceTimersByTime(2);
    expect(fired.map((r) => [r.phase, r.timeoutMs])).toEqual([['idle', 200]]);
    setTimeoutSpy.mockRestore();
  });

  it('re-arms at once when the due time moves sooner', () => {
    const { t, fired } = timer();
    t.arm('first-byte', 1000);
    vi.advanceTimersByTime(10);
    t.arm('idle', 50);
    vi.advanceTimersByTime(49);
    expect(fired).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(fired.map((r) => r.phase)).toEqual(['idle']);
  });

  it('sets timers in whole milliseconds', () => {
    const { t } = timer();
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    vi.advanceTimersByTime(0.4);
    t.setDeadline(performance.now() + 123.45);
    expect(setTimeoutSpy).toHaveBeenCalledTimes(1);
    const delay = setTimeoutSpy.mock.calls[0]![1];
    expect(delay).toBe(124);
    setTimeoutSpy.mockRestore();
    t.clear();
  });

  it('does not add a millisecond for the rounding error of now + timeout - now', () => {
    const { t } = timer();
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    // At this clock reading, (now + 120000) - now is 120000.00000000006.
    vi.advanceTimersByTime(473382.7376538105 - performance.now());
    expect(performance.now() + 120_000 - performance.now()).toBeGreaterThan(120_000);
    t.arm('first-byte', 120_000);
    expect(setTimeoutSpy.mock.calls[0]![1]).toBe(120_000);
    setTimeoutSpy.mockRestore();
    t.clear();
  });
});
