import { describe, expect, it, vi } from 'vitest';
import { Lifetime, type LifetimeListener } from '../../src/services/core/lifetime.js';

const listener = (fn: (reason: Error) => void): LifetimeListener => ({ onLifetimeEnd: fn });

describe('Lifetime', () => {
  it('ends once, with the first reason, telling listeners in order', () => {
    const life = new Lifetime();
    const heard: string[] = [];
    life.on(listener((r) => heard.push(`a:${r.message}`)));
    life.on(listener((r) => heard.push(`b:${r.message}`)));
    expect(life.ended).toBe(false);
    life.end(new Error('first'));
    life.end(new Error('second'));
    expect(life.ended).toBe(true);
    expect(life.reason?.message).toBe('first');
    expect(heard).toEqual(['a:first', 'b:first']);
  });

  it('does not call a listener that was taken off, also when one takes itself off while ending', () => {
    const life = new Lifetime();
    const heard: string[] = [];
    const gone = listener(() => heard.push('gone'));
    const self: LifetimeListener = {
      onLifetimeEnd: () => {
        heard.push('self');
        life.off(self);
      },
    };
    life.on(gone);
    life.on(self);
    life.on(listener(() => heard.push('last')));
    life.off(gone);
    life.end(new Error('x'));
    expect(heard).toEqual(['self', 'last']);
  });

  it('sleep resolves after its time and leaves no listener behind', async () => {
    vi.useFakeTimers();
    try {
      const life = new Lifetime();
      let done = false;
      const slept = life.sleep(100).then(() => (done = true));
      await vi.advanceTimersByTimeAsync(99);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await slept;
      expect(done).toBe(true);
      const heard: string[] = [];
      life.on(listener(() => heard.push('only')));
      life.end(new Error('x'));
      expect(heard).toEqual(['only']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('sleep rejects with the reason as soon as the request ends, and at once if it has', async () => {
    vi.useFakeTimers();
    try {
      const life = new Lifetime();
      const slept = life.sleep(10_000);
      life.end(new Error('client gone'));
      await expect(slept).rejects.toThrow('client gone');
      await expect(life.sleep(5)).rejects.toThrow('client gone');
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('gives an AbortSignal that follows it, and one already aborted after the end', () => {
    const life = new Lifetime();
    const { signal, release } = life.signal();
    const released = life.signal();
    released.release();
    life.end(new Error('deadline'));
    expect(signal.aborted).toBe(true);
    expect((signal.reason as Error).message).toBe('deadline');
    expect(released.signal.aborted).toBe(false);
    release();
    expect(life.signal().signal.aborted).toBe(true);
  });
});

describe('Lifetime deadline', () => {
  it('a sleep that would outlast the deadline ends the request at the deadline', async () => {
    vi.useFakeTimers();
    try {
      const life = new Lifetime(300);
      const heard: string[] = [];
      life.on(listener((r) => heard.push(r.name)));
      const slept = life.sleep(1_000);
      const rejected = expect(slept).rejects.toThrow('300 ms');
      await vi.advanceTimersByTimeAsync(299);
      expect(life.ended).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await rejected;
      expect(heard).toEqual(['DeadlineReason']);
    } finally {
      vi.useRealTimers();
    }
  });
});
