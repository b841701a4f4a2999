import type { AttemptRun } from '../core/attempt-run.js';
import type { ClientResponse } from '../core/client-response.js';
import type { Lifetime } from '../core/lifetime.js';
import type { CompletionRequest, RequestTrace } from '../core/request.js';
import type { StreamTranscript } from '../streaming/transcript.js';
import type { FailedAttempt } from './exhausted-error.js';

/**
 * One request's run through the gateway: the request, the client's response, the access-log trace, its
 * lifetime, what a stream has told the client (for repairs), the right to answer that attempts race
 * for, and the attempts on the pool of the model being tried. Every step of the failover loop (attempts,
 * hedges, continuations) works on this one object.
 */
export class RequestRun implements AttemptRun {
  /** The request as sent to the current model's pool (an alias rewrites its model and body). */
  req: CompletionRequest;
  /** Set once the first byte of the answer has been sent to the client: no retry after that. */
  committed = false;
  ttfbMs: number | undefined;
  /** Told which attempt won, so that a hedged rival can be aborted at once. */
  onCommit: ((winner: object) => void) | undefined;
  /** Headers the client gets at commit besides the endpoint and attempt count (an alias fallback's). */
  responseHeaders: Record<string, string> | undefined;

  // ---- the current model's pool ----
  /** Attempts on this model's pool. */
  attempts = 0;
  /** Endpoint names barred for the rest of this request (few: plain arrays, cheaper than sets). */
  readonly excluded: string[] = [];
  /** Endpoint names tried so far, each once. */
  readonly tried: string[] = [];
  readonly failures: FailedAttempt[] = [];
  backoffNext = false;

  /** When the request started (`now()` time). */
  readonly startedAt: number;
  /** Attempts waiting on an upstream right now, and since when one has been (performance.now()). */
  private upstreamActive = 0;
  private upstreamSince = 0;
  /** The attempt that has the right to answer. */
  private owner: object | undefined;

  constructor(
    req: CompletionRequest,
    readonly res: ClientResponse,
    readonly trace: RequestTrace,
    readonly lifetime: Lifetime,
    readonly now: () => number,
    /** Present for a stream: what the client has been told. */
    readonly transcript: StreamTranscript | undefined,
    /** The session id for affinity, if any. */
    readonly sessionKey: string | undefined,
  ) {
    this.req = req;
    this.startedAt = now();
  }

  get hideUsage(): boolean {
    return this.req.hideUsage === true;
  }

  get recorder(): StreamTranscript | undefined {
    return this.transcript;
  }

  /** Starts the pool of another model (an alias's next one): a fresh count of attempts and failures. */
  startPool(req: CompletionRequest, responseHeaders: Record<string, string> | undefined): void {
    this.req = req;
    this.responseHeaders = responseHeaders;
    this.attempts = 0;
    this.excluded.length = 0;
    this.tried.length = 0;
    this.failures.length = 0;
    this.backoffNext = false;
  }

  /**
   * An attempt starts or ends waiting on its upstream: the trace adds up the time at least one did
   * (hedged attempts overlap), which the gateway's overhead is the rest of.
   */
  upstreamStarted(): void {
    if (this.upstreamActive++ === 0) this.upstreamSince = performance.now();
  }

  upstreamEnded(): void {
    if (this.upstreamActive === 0) return;
    if (--this.upstreamActive === 0)
      this.trace.upstreamMs = (this.trace.upstreamMs ?? 0) + (performance.now() - this.upstreamSince);
  }

  exclude(name: string): void {
    if (!this.excluded.includes(name)) this.excluded.push(name);
  }

  noteTried(name: string): void {
    if (!this.tried.includes(name)) this.tried.push(name);
  }

  claim(owner: object, endpoint: string, status: number): boolean {
    if (this.committed) return this.owner === owner;
    this.committed = true;
    this.owner = owner;
    this.ttfbMs = this.now() - this.startedAt;
    const { trace } = this;
    trace.endpoint = endpoint;
    trace.upstreamStatus = status;
    trace.ttfbMs = this.ttfbMs;
    this.onCommit?.(owner);
    return true;
  }

  setGatewayHeaders(endpoint: string, attempt: number): void {
    const { res } = this;
    res.setHeader('x-gateway-endpoint', endpoint);
    res.setHeader('x-gateway-attempts', attempt);
    const extra = this.responseHeaders;
    if (extra) for (const name in extra) res.setHeader(name, extra[name]!);
  }
}
