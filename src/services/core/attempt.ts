import type { Timeouts } from '../../config/types.js';
import type { TimeoutPhase } from './abort-reasons.js';
import type { GatewayError } from '../../errors/gateway-error.js';
import type { ClientResponse } from './client-response.js';
import type { Endpoint } from '../endpoints/registry.js';
import type { Forwarder } from '../forwarder/forwarder.js';
import type { FailureKind } from '../endpoints/health.js';
import type { Lifetime } from './lifetime.js';
import type { CompletionTrace } from '../completion/completion-service.js';
import type { AttemptFailure } from '../forwarder/retry-policy.js';
import type { StreamTranscript } from '../streaming/transcript.js';

/** Shared by the attempts of one request and its heartbeat. */
export interface CommitState {
  /** Set once the first upstream byte has been sent to the client: no retry after that. */
  committed: boolean;
  ttfbMs?: number;
  /** The attempt that committed; with hedging, two attempts race for it. */
  owner?: AttemptInput;
  /** Told which attempt won, so that a hedged rival can be aborted at once. */
  onCommit?: (winner: AttemptInput) => void;
}

export interface AttemptInput {
  endpoint: Endpoint;
  /** The endpoint's timeouts with the request's overrides applied. */
  timeouts: Timeouts;
  /** Headers to add to the client response at commit (e.g. x-gateway-fallback-model). */
  responseHeaders?: Record<string, string> | undefined;
  attempt: number;
  body: Buffer;
  headers: Record<string, string>;
  res: ClientResponse;
  forwarder: Forwarder;
  /** Ends when the client leaves or the request's deadline passes. */
  lifetime: Lifetime;
  now: () => number;
  requestStartedAt: number;
  state: CommitState;
  /** What the access line says of the request; filled in at commit. */
  trace: CompletionTrace;
  /** Records what the stream said, when the request may be continued mid-stream. */
  transcript?: StreamTranscript | undefined;
}

export type AttemptResult =
  /** The whole answer reached the client. */
  | { type: 'done'; status: number; ttfbMs: number; latencyMs: number }
  /** Failed before commit: the client saw nothing of it, another attempt may follow. */
  | { type: 'failed'; failure: AttemptFailure }
  /** Failed after commit: the client's response is broken and must end with this error. */
  | { type: 'broken'; error: GatewayError; kind: FailureKind; timeout?: TimeoutPhase }
  /** A hedged rival committed first; this attempt stopped without a verdict on its endpoint. */
  | { type: 'lost' };

/** Sets the response headers the gateway adds at commit. */
export function setGatewayHeaders(input: AttemptInput): void {
  const { res } = input;
  res.setHeader('x-gateway-endpoint', input.endpoint.config.name);
  res.setHeader('x-gateway-attempts', input.attempt);
  const extra = input.responseHeaders;
  if (extra) for (const name in extra) res.setHeader(name, extra[name]!);
}

/**
 * Takes the right to answer the client; false if another attempt of this request already has it. The
 * trace gets the answering endpoint, its status and the time to first byte now, before any byte is
 * sent: the access line is written as soon as the response closes.
 */
export function claimCommit(input: AttemptInput, status: number): boolean {
  const { state, trace } = input;
  if (state.committed) return state.owner === input;
  state.committed = true;
  state.owner = input;
  state.ttfbMs = input.now() - input.requestStartedAt;
  trace.endpoint = input.endpoint.config.name;
  trace.upstreamStatus = status;
  trace.ttfbMs = state.ttfbMs;
  state.onCommit?.(input);
  return true;
}
