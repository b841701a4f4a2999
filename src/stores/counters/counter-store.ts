/**
 * The shared counters port: limit windows, in-flight slots and budgets, checked and updated in one
 * atomic step for all the scopes of a request (all admit and all count it, or none does). In the
 * process by default (`MemoryCounters`), in Redis for several replicas (`RedisCounters`, Lua scripts);
 * both pass one contract suite (test/contract/counter-store.contract.ts). It also carries the small
 * messages replicas tell each other (an endpoint ejected or cooling down).
 */

export type CounterCheck =
  /**
   * At most `limit` admissions in any rolling `windowMs` (rpm, claims per address per day). Windows
   * count in buckets of `bucketMs(windowMs)` (a 600th of the window: 100 ms for a minute): an
   * admission leaves at the end of its bucket plus the window, never earlier, so that no rolling
   * window ever holds more than the limit (a retry may be told to wait up to one bucket longer).
   */
  | { kind: 'count'; key: string; limit: number; windowMs: number }
  /**
   * At most `limit` in any rolling `windowMs`, each admission weighing the amount it was admitted with
   * (tpm: its token reservation); the amount can be corrected later (`correct`) while the admission is
   * still in the window.
   */
  | { kind: 'sum'; key: string; limit: number; windowMs: number }
  /** At most `limit` admissions holding a slot at once; released, or lost with its lease (maxParallel). */
  | { kind: 'slots'; key: string; limit: number }
  /** Admitted while less than `limit` has been spent under `key` (budget). */
  | { kind: 'budget'; key: string; limit: number };

export interface CheckState {
  /** What is left after this admission (for a refused one, what is left now). */
  remaining: number;
  /** Milliseconds until the scope's count is back at its limit (windows), or the period ends (budgets). */
  resetMs: number;
}

export type AdmitResult =
  /** `ticket`: what the admission holds, for `correct`, `release` and `renew`. */
  | { ok: true; states: CheckState[]; ticket: Ticket }
  /** `index`: the first check that refused; `retryAfterMs`: when it would admit the same request. */
  | { ok: false; index: number; retryAfterMs: number; states: CheckState[] };

/** A message replicas tell each other. */
export interface PeerMessage {
  type: string;
  [field: string]: unknown;
}

export interface CounterStore {
  readonly backend: 'memory' | 'redis';
  /**
   * Checks every limit for one admission named `id` (unique per request); if all admit, counts it
   * under every one of them (slots taken, amounts added), else under none. `amount` (0 if not given)
   * is what it weighs under its `sum` checks; it counts 1 under `count` checks. A caller may pass the
   * same `checks` array for many admissions (a scope's limits): stores may keep what they derive from
   * it, so it must not be changed afterwards.
   */
  admit(id: string, checks: readonly CounterCheck[], amount?: number): Promise<AdmitResult>;
  /**
   * Sets the amount an admission weighs in its `sum` windows under `keys` (a tpm reservation corrected
   * by real usage), while it is still in them.
   */
  correct(ticket: Ticket, keys: readonly string[], amount: number): Promise<void>;
  /**
   * Gives back the admission's slots; under `count` and `sum` keys, takes the admission back as if it
   * had never been (a claim that failed after its address was counted).
   */
  release(ticket: Ticket, keys: readonly string[]): Promise<void>;
  /** Keeps the slots of admissions still running from expiring (a live replica renews; a dead one does not). */
  renew(held: ReadonlyArray<{ ticket: Ticket; slotKeys: readonly string[] }>): Promise<void>;
  /** Adds spending under budget keys; each key expires `ttlMs` later when given (a period's end). */
  spend(entries: ReadonlyArray<{ key: string; ttlMs: number | undefined }>, amount: number): Promise<void>;
  /** What has been spent under a budget key. */
  spent(key: string): Promise<number>;
  /** Tells every replica (this one included). */
  publish(message: PeerMessage): Promise<void>;
  /** Resolves once messages published from now on reach `handler`. */
  onMessage(handler: (message: PeerMessage) => void): Promise<void>;
  close(): Promise<void>;
}

/**
 * An admission as counted: its id, the store's time when it was counted (which bucket of each window
 * holds it) and what it weighs under each check, kept here (rather than in the store, per admission)
 * so that a correction or a release is a difference added to one bucket.
 */
export class Ticket {
  private weights: number[] | undefined;

  constructor(
    readonly id: string,
    readonly at: number,
    readonly checks: readonly CounterCheck[],
    /** What it was admitted with under its `sum` checks. */
    readonly amount: number,
  ) {}

  /** The index of the check under `key`, -1 if none. */
  indexOf(key: string): number {
    const { checks } = this;
    for (let i = 0; i < checks.length; i++) if (checks[i]!.key === key) return i;
    return -1;
  }

  /** What the admission weighs under check `i` now: its amount as corrected, 0 once taken back. */
  weight(i: number): number {
    const w = this.weights?.[i];
    if (w !== undefined) return w;
    return this.checks[i]!.kind === 'sum' ? this.amount : 1;
  }

  /** Records a new weight under check `i`; returns the difference to add to its bucket. */
  reweigh(i: number, weight: number): number {
    const delta = weight - this.weight(i);
    (this.weights ??= [])[i] = weight;
    return delta;
  }
}

/** The bucket length of a window: a 600th of it (100 ms for a minute), at least 1 ms. */
export function bucketMs(windowMs: number): number {
  return Math.max(1, Math.ceil(windowMs / 600));
}

/** How long a slot lives without renewal: a dead replica's slots come back within this. */
export const SLOT_LEASE_MS = 30_000;
/** How often a live replica renews its slots (a third of the lease: two renewals may fail). */
export const SLOT_RENEW_MS = 10_000;
