import { DeadlineReason } from './abort-reasons.js';

/**
 * The life of one request: ended once, with a reason (the client went away, the deadline passed), and
 * whoever works for the request (attempts, waits) is told at once.
 *
 * Not an AbortController: Node's EventTarget makes creating a controller and adding a listener cost
 * more than the rest of a request's routing, and every request has one. The few callers that need a
 * real AbortSignal (a streamed continuation) derive one from it.
 */
/** Told when a request ends (an object rather than a callback: no closure per listener). */
export interface LifetimeListener {
  onLifetimeEnd(reason: Error): void;
}

export class Lifetime {
  private why: Error | undefined;
  private listeners: LifetimeListener[] = [];
  /** When the request's time is up (a performance.now() time); whoever waits or works enforces it. */
  readonly deadlineAt: number;

  /** `totalMs`: the request's time limit, from now. */
  constructor(readonly totalMs = Number.POSITIVE_INFINITY) {
    this.deadlineAt = performance.now() + totalMs;
  }

  /** Ends the request because its time is up. */
  expire(): void {
    this.end(new DeadlineReason(this.totalMs));
  }

  get ended(): boolean {
    return this.why !== undefined;
  }

  /** Why the request ended; undefined while it goes on. */
  get reason(): Error | undefined {
    return this.why;
  }

  /** Ends the request (the first reason wins) and tells every listener, in the order they came. */
  end(reason: Error): void {
    if (this.why !== undefined) return;
    this.why = reason;
    const listeners = this.listeners;
    this.listeners = [];
    for (const listener of listeners) listener.onLifetimeEnd(reason);
  }

  /** Tells `listener` when the request ends; call off() when no longer interested. */
  on(listener: LifetimeListener): void {
    this.listeners.push(listener);
  }

  off(listener: LifetimeListener): void {
    const i = this.listeners.indexOf(listener);
    if (i >= 0) this.listeners.splice(i, 1);
  }

  /** Waits `ms`, or rejects with the reason as soon as the request ends (its deadline included). */
  sleep(ms: number): Promise<void> {
    if (this.why !== undefined) return Promise.reject(this.why);
    const untilDeadline = this.deadlineAt - performance.now();
    return new Promise<void>((resolve, reject) => {
      const onEnd: LifetimeListener = {
        onLifetimeEnd: (reason) => {
          clearTimeout(timer);
          reject(reason);
        },
      };
      const timer =
        ms < untilDeadline
          ? setTimeout(() => {
              this.off(onEnd);
              resolve();
            }, ms)
          : setTimeout(() => this.expire(), Math.max(0, untilDeadline));
      this.on(onEnd);
    });
  }

  /** An AbortSignal that follows this lifetime, for APIs that take one; release() when done. */
  signal(): { signal: AbortSignal; release: () => void } {
    const controller = new AbortController();
    if (this.why !== undefined) {
      controller.abort(this.why);
      return { signal: controller.signal, release: () => undefined };
    }
    const onEnd: LifetimeListener = { onLifetimeEnd: (reason) => controller.abort(reason) };
    this.on(onEnd);
    return { signal: controller.signal, release: () => this.off(onEnd) };
  }
}
