import {
  SLOT_LEASE_MS,
  type AdmitResult,
  type CheckState,
  type CounterCheck,
  type CounterStore,
  type PeerMessage,
} from './counter-store.js';

interface Entry {
  id: string;
  at: number;
  amount: number;
}

/** Admissions in a rolling window, oldest first, and their total. */
class Window {
  constructor(readonly windowMs: number) {}
  private entries: Entry[] = [];
  private head = 0;
  sum = 0;

  trim(since: number): void {
    while (this.head < this.entries.length && this.entries[this.head]!.at <= since) {
      this.sum -= this.entries[this.head]!.amount;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  add(entry: Entry): void {
    this.entries.push(entry);
    this.sum += entry.amount;
  }

  get empty(): boolean {
    return this.head >= this.entries.length;
  }

  find(id: string): Entry | undefined {
    for (let i = this.entries.length - 1; i >= this.head; i--)
      if (this.entries[i]!.id === id) return this.entries[i];
    return undefined;
  }

  /** When enough of the oldest admissions have left for `amount` more to fit under `limit`. */
  fitsAt(amount: number, limit: number, windowMs: number): number {
    let freed = 0;
    for (let i = this.head; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      freed += e.amount;
      if (this.sum - freed + amount <= limit) return e.at + windowMs;
    }
    return Number.POSITIVE_INFINITY;
  }

  /** When the newest admission leaves: the window is whole again. */
  clearAt(windowMs: number): number {
    return this.empty ? 0 : this.entries[this.entries.length - 1]!.at + windowMs;
  }
}

/**
 * Counters kept in this process: exact for one process, the default without REDIS_URL. The same
 * semantics as the Redis store, on the same injected clock.
 */
export class MemoryCounters implements CounterStore {
  readonly backend = 'memory' as const;
  private readonly windows = new Map<string, Window>();
  private readonly slots = new Map<string, Map<string, number>>();
  private readonly budgets = new Map<string, { spent: number; expiresAt: number }>();
  private readonly handlers: Array<(message: PeerMessage) => void> = [];
  private readonly now: () => number;
  private sweepAt = 0;

  constructor(options: { now?: () => number } = {}) {
    this.now = options.now ?? Date.now;
  }

  admit(id: string, checks: readonly CounterCheck[]): Promise<AdmitResult> {
    const now = this.now();
    this.sweep(now);
    const states: CheckState[] = [];
    let refused: { index: number; retryAfterMs: number } | undefined;
    checks.forEach((check, index) => {
      const { state, retryAtMs } = this.check(check, now);
      states.push(state);
      if (retryAtMs !== undefined && refused === undefined)
        refused = { index, retryAfterMs: Math.max(0, retryAtMs - now) };
    });
    if (refused) return Promise.resolve({ ok: false, ...refused, states });
    checks.forEach((check, i) => {
      if (check.kind === 'count' || check.kind === 'sum') {
        const window = this.window(check.key, check.windowMs);
        window.add({ id, at: now, amount: check.kind === 'sum' ? check.amount : 1 });
        states[i] = {
          remaining: Math.max(0, check.limit - window.sum),
          resetMs: window.clearAt(check.windowMs) - now,
        };
      } else if (check.kind === 'slots') {
        let held = this.slots.get(check.key);
        if (!held) this.slots.set(check.key, (held = new Map<string, number>()));
        held.set(id, now + SLOT_LEASE_MS);
        states[i] = { remaining: Math.max(0, check.limit - held.size), resetMs: 0 };
      }
    });
    return Promise.resolve({ ok: true, states });
  }

  private check(check: CounterCheck, now: number): { state: CheckState; retryAtMs?: number } {
    switch (check.kind) {
      case 'count':
      case 'sum': {
        const window = this.windows.get(check.key);
        window?.trim(now - check.windowMs);
        const sum = window?.sum ?? 0;
        const amount = check.kind === 'sum' ? check.amount : 1;
        const state = {
          remaining: Math.max(0, check.limit - sum),
          resetMs: Math.max(0, (window?.clearAt(check.windowMs) ?? 0) - now),
        };
        if (sum + amount <= check.limit) return { state };
        return { state, retryAtMs: window ? window.fitsAt(amount, check.limit, check.windowMs) : Infinity };
      }
      case 'slots': {
        const held = this.slots.get(check.key);
        if (held) for (const [id, until] of held) if (until <= now) held.delete(id);
        const n = held?.size ?? 0;
        const state = { remaining: Math.max(0, check.limit - n), resetMs: 0 };
        // Nobody knows when a slot frees: a second is a fair guess for a client's retry.
        return n + 1 <= check.limit ? { state } : { state, retryAtMs: now + 1_000 };
      }
      case 'budget': {
        const budget = this.liveBudget(check.key, now);
        const spent = budget?.spent ?? 0;
        const resetMs = budget && Number.isFinite(budget.expiresAt) ? budget.expiresAt - now : 0;
        const state = { remaining: Math.max(0, check.limit - spent), resetMs };
        return spent < check.limit ? { state } : { state, retryAtMs: budget ? budget.expiresAt : Infinity };
      }
    }
  }

  correct(id: string, keys: readonly string[], amount: number): Promise<void> {
    for (const key of keys) {
      const window = this.windows.get(key);
      const entry = window?.find(id);
      if (!window || !entry) continue;
      window.sum += amount - entry.amount;
      entry.amount = amount;
    }
    return Promise.resolve();
  }

  release(id: string, keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      this.slots.get(key)?.delete(id);
      const window = this.windows.get(key);
      const entry = window?.find(id);
      if (window && entry) {
        window.sum -= entry.amount;
        entry.amount = 0;
      }
    }
    return Promise.resolve();
  }

  renew(held: ReadonlyArray<{ id: string; slotKeys: readonly string[] }>): Promise<void> {
    const until = this.now() + SLOT_LEASE_MS;
    for (const { id, slotKeys } of held)
      for (const key of slotKeys) {
        const slots = this.slots.get(key);
        if (slots?.has(id)) slots.set(id, until);
      }
    return Promise.resolve();
  }

  spend(entries: ReadonlyArray<{ key: string; ttlMs: number | undefined }>, amount: number): Promise<void> {
    const now = this.now();
    for (const { key, ttlMs } of entries) {
      const budget = this.liveBudget(key, now);
      if (budget) budget.spent += amount;
      else this.budgets.set(key, { spent: amount, expiresAt: ttlMs === undefined ? Infinity : now + ttlMs });
    }
    return Promise.resolve();
  }

  spent(key: string): Promise<number> {
    return Promise.resolve(this.liveBudget(key, this.now())?.spent ?? 0);
  }

  publish(message: PeerMessage): Promise<void> {
    for (const handler of this.handlers) queueMicrotask(() => handler(message));
    return Promise.resolve();
  }

  onMessage(handler: (message: PeerMessage) => void): Promise<void> {
    this.handlers.push(handler);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private window(key: string, windowMs: number): Window {
    let window = this.windows.get(key);
    if (!window) this.windows.set(key, (window = new Window(windowMs)));
    return window;
  }

  private liveBudget(key: string, now: number) {
    const budget = this.budgets.get(key);
    if (budget && budget.expiresAt <= now) {
      this.budgets.delete(key);
      return undefined;
    }
    return budget;
  }

  /** Now and then, forgets windows and slot sets left empty (keys that stopped calling). */
  private sweep(now: number): void {
    if (now < this.sweepAt) return;
    this.sweepAt = now + 60_000;
    for (const [key, window] of this.windows) {
      window.trim(now - window.windowMs);
      if (window.empty) this.windows.delete(key);
    }
    for (const [key, held] of this.slots) if (held.size === 0) this.slots.delete(key);
  }
}
