import { AttemptTimeoutReason, type TimeoutPhase } from './abort-reasons.js';

/**
 * One re-armable timer per attempt for the current phase (first byte, then idle between chunks).
 * Re-arming the same phase refreshes the existing timer, so a chunk costs no new timer or allocation.
 */
export class PhaseTimer {
  private handle: NodeJS.Timeout | undefined;
  private phase: TimeoutPhase | undefined;

  constructor(private readonly onTimeout: (reason: AttemptTimeoutReason) => void) {}

  arm(phase: TimeoutPhase, timeoutMs: number): void {
    if (this.handle !== undefined && this.phase === phase) {
      this.handle.refresh();
      return;
    }
    this.clear();
    this.phase = phase;
    this.handle = setTimeout(() => {
      this.handle = undefined;
      this.onTimeout(new AttemptTimeoutReason(phase, timeoutMs));
    }, timeoutMs);
  }

  clear(): void {
    if (this.handle !== undefined) clearTimeout(this.handle);
    this.handle = undefined;
  }
}
