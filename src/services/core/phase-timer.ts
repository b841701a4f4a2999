import { AttemptTimeoutReason, type TimeoutPhase } from './abort-reasons.js';

/** Who a PhaseTimer tells (an object rather than callbacks: no closures per attempt). */
export interface TimerTarget {
  onPhaseTimeout(reason: AttemptTimeoutReason): void;
  onDeadline(): void;
}

/**
 * The one timer of an attempt: the current phase's timeout (first byte, then idle between chunks) and
 * a hard deadline no phase goes past (the attempt's total, the request's deadline). Progress within a
 * phase is recorded with touch(), a clock read; the timer is re-armed only when it fires early because
 * of that progress, once per timeout period rather than once per chunk. Likewise a change that makes
 * the due time later keeps the armed timer, which re-arms itself when it fires early.
 *
 * Timers are set in whole milliseconds: Node keeps one list per distinct duration, so a fractional
 * duration (a performance.now() difference) would create, queue and delete a list for every timer.
 */
export class PhaseTimer {
  private handle: NodeJS.Timeout | undefined;
  /** When the armed timer goes off (performance.now() time, whole ms after it was set). */
  private handleDueAt = Number.POSITIVE_INFINITY;
  private phase: TimeoutPhase | undefined;
  private timeoutMs = 0;
  private lastProgressAt = 0;
  private deadlineAt = Number.POSITIVE_INFINITY;

  constructor(private readonly target: TimerTarget) {}

  /** Tells the target at `atMs` (a performance.now() time), whatever the phase, until clear(). */
  setDeadline(atMs: number): void {
    this.deadlineAt = atMs;
    this.schedule(performance.now());
  }

  /** Starts `phase` (or, if it is the current one, records progress in it). */
  arm(phase: TimeoutPhase, timeoutMs: number): void {
    const now = performance.now();
    if (this.phase === phase && this.timeoutMs === timeoutMs && this.handle !== undefined) {
      this.lastProgressAt = now;
      return;
    }
    this.phase = phase;
    this.timeoutMs = timeoutMs;
    this.lastProgressAt = now;
    this.schedule(now);
  }

  /** Progress in the current phase: its timeout counts from now. */
  touch(): void {
    this.lastProgressAt = performance.now();
  }

  /** No phase timeout for now (waiting on the client, not the upstream); the deadline still holds. */
  suspend(): void {
    this.phase = undefined;
    this.schedule(performance.now());
  }

  /** Stops everything. */
  clear(): void {
    this.phase = undefined;
    this.deadlineAt = Number.POSITIVE_INFINITY;
    this.cancel();
  }

  private cancel(): void {
    if (this.handle !== undefined) clearTimeout(this.handle);
    this.handle = undefined;
    this.handleDueAt = Number.POSITIVE_INFINITY;
  }

  /**
   * Makes sure the timer goes off by whichever comes first, the phase's timeout or the deadline: an
   * armed timer due no later than that is kept (fired() re-arms when it comes early).
   */
  private schedule(now: number): void {
    const phaseDue =
      this.phase === undefined ? Number.POSITIVE_INFINITY : this.lastProgressAt + this.timeoutMs;
    const due = Math.min(phaseDue, this.deadlineAt);
    if (this.handle !== undefined && this.handleDueAt <= due) return;
    this.cancel();
    if (due === Number.POSITIVE_INFINITY) return;
    // Rounded up, less a rounding error of the sums (now + timeout - now is not always the timeout).
    const delayMs = Math.max(0, Math.ceil(due - now - 1e-6));
    this.handleDueAt = now + delayMs;
    this.handle = setTimeout(fire, delayMs, this);
  }

  /** @internal the timer went off. */
  fired(): void {
    this.handle = undefined;
    this.handleDueAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    // Timers fire on the event loop's millisecond clock: within a millisecond counts as due.
    if (now >= this.deadlineAt - 1) {
      this.clear();
      this.target.onDeadline();
      return;
    }
    if (this.phase !== undefined && now >= this.lastProgressAt + this.timeoutMs - 1) {
      const reason = new AttemptTimeoutReason(this.phase, this.timeoutMs);
      this.phase = undefined;
      this.schedule(now);
      this.target.onPhaseTimeout(reason);
      return;
    }
    this.schedule(now);
  }
}

function fire(timer: PhaseTimer): void {
  timer.fired();
}
