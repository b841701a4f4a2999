import {
  bucketMs,
  SLOT_LEASE_MS,
  Ticket,
  type AdmitResult,
  type CheckState,
  type CounterCheck,
  type CounterStore,
  type PeerMessage,
} from './counter-store.js';

/**
 * A rolling window in buckets (`bucketMs`): a ring of bucket totals in a typed array and their sum.
 * An admission adds its amount to the bucket of its time; it leaves at its bucket's end plus the
 * window. Memory and time per admission are constant, however busy the window.
 */
class Window {
  readonly size: number;
  private readonly amounts: Float64Array;
  private readonly mask: number;
  /** The oldest bucket that may still count, and the newest one that was added to. */
  private first: number;
  private last: number;
  sum = 0;

  constructor(
    readonly windowMs: number,
    now: number,
  ) {
    this.size = bucketMs(windowMs);
    // Room for every live bucket: the window's, the current one and the one being left.
    let n = 4;
    while (n < Math.ceil(windowMs / this.size) + 2) n *= 2;
    this.amounts = new Float64Array(n);
    this.mask = n - 1;
    this.first = this.firstLive(now);
    this.last = this.first - 1;
  }

  private firstLive(now: number): number {
    return Math.floor((now - this.windowMs) / this.size);
  }

  bucketOf(at: number): number {
    return Math.floor(at / this.size);
  }

  trim(now: number): void {
    const live = this.firstLive(now);
    if (live <= this.first) return;
    if (live > this.last) {
      this.amounts.fill(0);
      this.sum = 0;
      this.last = live - 1;
    } else
      for (let b = this.first; b < live; b++) {
        this.sum -= this.amounts[b & this.mask]!;
        this.amounts[b & this.mask] = 0;
      }
    this.first = live;
  }

  add(bucket: number, amount: number): void {
    // A clock stepped back counts in the oldest live bucket, never outside the ring.
    if (bucket < this.first) bucket = this.first;
    this.amounts[bucket & this.mask]! += amount;
    this.sum += amount;
    if (bucket > this.last) this.last = bucket;
  }

  /** Adds `delta` to a bucket still in the window (a correction, a release); false if it has left. */
  adjust(bucket: number, delta: number): boolean {
    if (bucket < this.first || bucket > this.last) return false;
    this.amounts[bucket & this.mask]! += delta;
    this.sum += delta;
    return true;
  }

  get empty(): boolean {
    return this.last < this.first || this.sum <= 0;
  }

  /** When enough of the oldest buckets have left for `amount` more to fit under `limit`. */
  fitsAt(amount: number, limit: number): number {
    if (amount > limit) return Number.POSITIVE_INFINITY;
    let freed = 0;
    for (let b = this.first; b <= this.last; b++) {
      freed += this.amounts[b & this.mask]!;
      if (this.sum - freed + amount <= limit) return this.endOf(b);
    }
    return Number.POSITIVE_INFINITY;
  }

  /** When the newest admission leaves: the window is whole again (0 when it is empty). */
  clearAt(): number {
    return this.empty ? 0 : this.endOf(this.last);
  }

  /** When bucket `b`'s admissions leave the window. */
  endOf(b: number): number {
    return (b + 1) * this.size + this.windowMs;
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

  admit(id: string, checks: readonly CounterCheck[], amount = 0): Promise<AdmitResult> {
    const now = this.now();
    this.sweep(now);
    const states: CheckState[] = [];
    let refused: { index: number; retryAfterMs: number } | undefined;
    checks.forEach((check, index) => {
      const { state, retryAtMs } = this.check(check, check.kind === 'sum' ? amount : 1, now);
      states.push(state);
      if (retryAtMs !== undefined && refused === undefined)
        refused = { index, retryAfterMs: Math.max(0, retryAtMs - now) };
    });
    if (refused) return Promise.resolve({ ok: false, ...refused, states });
    checks.forEach((check, i) => {
      if (check.kind === 'count' || check.kind === 'sum') {
        const window = this.window(check.key, check.windowMs, now);
        const bucket = window.bucketOf(now);
        window.add(bucket, check.kind === 'sum' ? amount : 1);
        states[i] = {
          remaining: Math.max(0, check.limit - window.sum),
          resetMs: window.endOf(bucket) - now,
        };
      } else if (check.kind === 'slots') {
        let held = this.slots.get(check.key);
        if (!held) this.slots.set(check.key, (held = new Map<string, number>()));
        held.set(id, now + SLOT_LEASE_MS);
        states[i] = { remaining: Math.max(0, check.limit - held.size), resetMs: 0 };
      }
    });
    return Promise.resolve({ ok: true, states, ticket: new Ticket(id, now, checks, amount) });
  }

  /** One check of an admission weighing `amount` under it. */
  private check(check: CounterCheck, amount: number, now: number): { state: CheckState; retryAtMs?: number } {
    switch (check.kind) {
      case 'count':
      case 'sum': {
        let window = this.windows.get(check.key);
        // Another window length under the same key (a changed configuration) starts anew.
        if (window && window.windowMs !== check.windowMs) {
          this.windows.delete(check.key);
          window = undefined;
        }
        window?.trim(now);
        const sum = window?.sum ?? 0;
        const state = {
          remaining: Math.max(0, check.limit - sum),
          resetMs: Math.max(0, (window?.clearAt() ?? 0) - now),
        };
        if (sum + amount <= check.limit) return { state };
        return {
          state,
          retryAtMs: window ? window.fitsAt(amount, check.limit) : amount > check.limit ? Infinity : now,
        };
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

  correct(ticket: Ticket, keys: readonly string[], amount: number): Promise<void> {
    for (const key of keys) this.reweigh(ticket, key, amount);
    return Promise.resolve();
  }

  release(ticket: Ticket, keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      this.slots.get(key)?.delete(ticket.id);
      this.reweigh(ticket, key, 0);
    }
    return Promise.resolve();
  }

  /** Gives an admission a new weight in the bucket that holds it, if it is still in the window. */
  private reweigh(ticket: Ticket, key: string, weight: number): void {
    const i = ticket.indexOf(key);
    const check = ticket.checks[i];
    if (check?.kind !== 'count' && check?.kind !== 'sum') return;
    const window = this.windows.get(key);
    if (!window || window.windowMs !== check.windowMs) return;
    window.trim(this.now());
    window.adjust(window.bucketOf(ticket.at), ticket.reweigh(i, weight));
  }

  renew(held: ReadonlyArray<{ ticket: Ticket; slotKeys: readonly string[] }>): Promise<void> {
    const until = this.now() + SLOT_LEASE_MS;
    for (const { ticket, slotKeys } of held)
      for (const key of slotKeys) {
        const slots = this.slots.get(key);
        if (slots?.has(ticket.id)) slots.set(ticket.id, until);
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

  private window(key: string, windowMs: number, now: number): Window {
    let window = this.windows.get(key);
    if (!window) this.windows.set(key, (window = new Window(windowMs, now)));
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
      window.trim(now);
      if (window.empty) this.windows.delete(key);
    }
    for (const [key, held] of this.slots) if (held.size === 0) this.slots.delete(key);
  }
}
