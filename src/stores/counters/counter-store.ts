/**
 * The shared counters port: limit windows, in-flight slots and budgets, checked and updated in one
 * atomic step for all the scopes of a request (all admit and all count it, or none does). In the
 * process by default (`MemoryCounters`), in Redis for several replicas (`RedisCounters`, Lua scripts);
 * both pass one contract suite (test/contract/counter-store.contract.ts). It also carries the small
 * messages replicas tell each other (an endpoint ejected or cooling down).
 */

export type CounterCheck =
  /** At most `limit` admissions in any rolling `windowMs` (rpm, claims per address per day). */
  | { kind: 'count'; key: string; limit: number; windowMs: number }
  /**
   * At most `limit` in any rolling `windowMs`, this admission weighing `amount` (tpm); the amount can
   * be corrected later (`correct`) while the admission is still in the window.
   */
  | { kind: 'sum'; key: string; limit: number; windowMs: number; amount: number }
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
  | { ok: true; states: CheckState[] }
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
   * under every one of them (slots taken, amounts added), else under none.
   */
  admit(id: string, checks: readonly CounterCheck[]): Promise<AdmitResult>;
  /** Sets the amount an admission weighs in `sum` windows (a tpm reservation corrected by real usage). */
  correct(id: string, keys: readonly string[], amount: number): Promise<void>;
  /**
   * Gives back the admission's slots; under `count` keys, takes the admission back as if it had never
   * been (a claim that failed after its address was counted).
   */
  release(id: string, keys: readonly string[]): Promise<void>;
  /** Keeps the slots of admissions still running from expiring (a live replica renews; a dead one does not). */
  renew(held: ReadonlyArray<{ id: string; slotKeys: readonly string[] }>): Promise<void>;
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

/** How long a slot lives without renewal: a dead replica's slots come back within this. */
export const SLOT_LEASE_MS = 30_000;
/** How often a live replica renews its slots (a third of the lease: two renewals may fail). */
export const SLOT_RENEW_MS = 10_000;
