import { AttemptTimeoutReason, type TimeoutPhase } from './abort-reasons.js';

/**
 * One timer per attempt for the current phase (first byte, then idle between chunks). Progress within
 * a phase is recorded with touch(), a clock read; the timer is re-armed only when it fires early
 * because of that progress, once per timeout period rather than once per chunk.
 */
export class PhaseTimer {
  private handle: NodeJS.Timeout | undefined;
  private phase: TimeoutPhase | undefined;
  private timeoutMs = 0;
  private lastProgressAt = 0;

  constructor(private readonly onTimeout: (reason: AttemptTimeoutReason) => void) {}

  /** Starts `phase` (or, if it is the current one, records progress in it). */
  arm(phase: TimeoutPhase, timeoutMs: number): void {
    if (this.handle !== undefined && this.phase === phase && this.timeoutMs === timeoutMs) {
      this.touch();
      return;
    }
    this.clear();
    this.phase = phase;
    this.timeoutMs = timeoutMs;
    this.lastProgressAt = performance.now();
    this.handle = setTimeout(this.fire, timeoutMs);
  }

  /** Progress in the current phase: its timeout counts from now. */
  touch(): void {
    this.lastProgressAt = performance.now();
  }

  clear(): void {
    if (this.handle !== undefined) clearTimeout(this.handle);
    this.handle = undefined;
  }

  private readonly fire = (): void => {
    const quietMs = performance.now() - this.lastProgressAt;
    // Timers fire on the event loop's millisecond clock: within a millisecond counts as due.
    if (quietMs < this.timeoutMs - 1) {
      this.handle = setTimeout(this.fire, this.timeoutMs - quietMs);
      return;
    }
    this.handle = undefined;
    this.onTimeout(new AttemptTimeoutReason(this.phase!, this.timeoutMs));
  };
}
