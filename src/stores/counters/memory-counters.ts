import {
  SLOT_LEASE_MS,
  type AdmitResult,
  type CheckState,
  type CounterCheck,
  type CounterStore,
  type PeerMessage,
} from './counter-store.js';

/**
 * Admissions in a rolling window, oldest first, and their total: a ring of times and amounts in typed
 * arrays beside the admission ids (no object per admission: a busy window holds a minute of them).
 * Corrections and releases look an id up from the newest end, where running requests are.
 */
class Window {
  private at = new Float64Array(64);
  private amounts = new Float64Array(64);
  private ids = new Array<string | undefined>(64);
  /** Absolute positions: the oldest entry, and one past the newest. */
  private head = 0;
  private tail = 0;
  sum = 0;

  constructor(readonly windowMs: number) {}

  private get mask(): number {
    return this.at.length - 1;
  }

  trim(since: number): void {
    const { at, amounts, mask } = this;
    while (this.head < this.tail && at[this.head & mask]! <= since) {
      this.sum -= amounts[this.head & mask]!;
      this.ids[this.head & mask] = undefined;
      this.head++;
    }
  }

  add(id: string, at: number, amount: number): void {
    if (this.tail - this.head === this.at.length) this.grow();
    const i = this.tail & this.mask;
    this.at[i] = at;
    this.amounts[i] = amount;
    this.ids[i] = id;
    this.tail++;
    this.sum += amount;
  }

  /** Twice the room, the entries copied in order to the start. */
  private grow(): void {
    const size = this.tail - this.head;
    const at = new Float64Array(this.at.length * 2);
    const amounts = new Float64Array(this.at.length * 2);
    const ids = new Array<string | undefined>(this.at.length * 2);
    for (let k = 0; k < size; k++) {
      const i = (this.head + k) & this.mask;
      at[k] = this.at[i]!;
      amounts[k] = this.amounts[i]!;
      ids[k] = this.ids[i];
    }
    this.at = at;
    this.amounts = amounts;
    this.ids = ids;
    this.head = 0;
    this.tail = size;
  }

  get empty(): boolean {
    return this.head >= this.tail;
  }

  /** Sets the amount of admission `id` (its ring position), newest first; false if it left the window. */
  setAmount(id: string, amount: number): boolean {
    const { ids, mask } = this;
    for (let k = this.tail - 1; k >= this.head; k--)
      if (ids[k & mask] === id) {
        this.sum += amount - this.amounts[k & mask]!;
        this.amounts[k & mask] = amount;
        return true;
      }
    return false;
  }

  /** When enough of the oldest admissions have left for `amount` more to fit under `limit`. */
  fitsAt(amount: number, limit: number, windowMs: number): number {
    let freed = 0;
    for (let k = this.head; k < this.tail; k++) {
      freed += this.amounts[k & this.mask]!;
      if (this.sum - freed + amount <= limit) return this.at[k & this.mask]! + windowMs;
    }
    return Number.POSITIVE_INFINITY;
  }

  /** When the newest admission leaves: the window is whole again. */
  clearAt(windowMs: number): number {
    return this.empty ? 0 : this.at[(this.tail - 1) & this.mask]! + windowMs;
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
        window.add(id, now, check.kind === 'sum' ? check.amount : 1);
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
    for (const key of keys) this.windows.get(key)?.setAmount(id, amount);
    return Promise.resolve();
  }

  release(id: string, keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      this.slots.get(key)?.delete(id);
      this.windows.get(key)?.setAmount(id, 0);
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
