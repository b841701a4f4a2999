import type { ClientResponse } from './client-response.js';
import type { Lifetime } from './lifetime.js';
import type { RequestTrace } from './request.js';

/** Whole events that reached the client, for repairing the stream should it break. */
export interface StreamRecorder {
  feed(events: Buffer): void;
}

/**
 * What an upstream attempt needs from the request it works for (the request run of completion/
 * implements it): the client's response, the request's lifetime and clock, and the right to answer,
 * which several attempts (a hedge) may race for.
 */
export interface AttemptRun {
  readonly res: ClientResponse;
  /** What the access line will say of the request (usage is noted there). */
  readonly trace: RequestTrace;
  /** The usage-only chunk is the gateway's, not the client's: taken out of the stream. */
  readonly hideUsage: boolean;
  /** Ends when the client leaves or the request's deadline passes. */
  readonly lifetime: Lifetime;
  readonly now: () => number;
  /** When the request started (`now()` time). */
  readonly startedAt: number;
  /** Present for a stream. */
  readonly recorder: StreamRecorder | undefined;
  /**
   * Takes the right to answer the client for `owner`; false if another attempt has it. Records the
   * answering endpoint, its status and the time to first byte before any byte is sent.
   */
  claim(owner: object, endpoint: string, status: number): boolean;
  /** Sets the response headers the gateway adds at commit. */
  setGatewayHeaders(endpoint: string, attempt: number): void;
  /** An attempt starts waiting on its upstream (the time the gateway's overhead excludes). */
  upstreamStarted(): void;
  /** It is over (answer relayed, failed, or lost): once per attempt, before the client's response closes. */
  upstreamEnded(): void;
}
