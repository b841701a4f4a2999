/**
 * Why an upstream request was aborted. Passed as AbortSignal reasons so that whoever observes the abort
 * can tell a client that went away from a timeout that fired.
 */
export class ClientClosedReason extends Error {
  constructor() {
    super('client closed the connection');
    this.name = 'ClientClosedReason';
  }
}

export class DeadlineReason extends Error {
  constructor(readonly totalMs: number) {
    super(`request did not complete within ${totalMs} ms`);
    this.name = 'DeadlineReason';
  }
}

export type TimeoutPhase = 'first-byte' | 'idle' | 'attempt-total' | 'throughput';

export class AttemptTimeoutReason extends Error {
  constructor(
    readonly phase: TimeoutPhase,
    readonly timeoutMs: number,
  ) {
    super(
      phase === 'first-byte'
        ? `no response within ${timeoutMs} ms (first byte timeout)`
        : phase === 'idle'
          ? `stream stalled: no data for ${timeoutMs} ms (idle timeout)`
          : phase === 'throughput'
            ? `stream slower than the minimum throughput over ${timeoutMs} ms`
            : `attempt exceeded the endpoint's total timeout of ${timeoutMs} ms`,
    );
    this.name = 'AttemptTimeoutReason';
  }
}

/** A hedged rival committed first: this attempt is stopped, with no verdict on its endpoint. */
export class HedgeLostReason extends Error {
  constructor() {
    super('another attempt answered first');
    this.name = 'HedgeLostReason';
  }
}

/** The gateway stopped (its grace period ran out) before the request was over: no verdict on endpoints. */
export class ShuttingDownReason extends Error {
  constructor() {
    super('the gateway is shutting down');
    this.name = 'ShuttingDownReason';
  }
}
