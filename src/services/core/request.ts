import type { Timeouts } from '../../config/types.js';
import type { LineLog } from '../../observability/logger.js';
import type { RequestSpan } from '../../observability/tracing.js';

export interface CompletionRequest {
  /** The model (or alias) the client asked for. */
  model: string;
  /** The upstream path (below the endpoint's base URL); `/v1/chat/completions` unless set. */
  path?: string;
  stream: boolean;
  /** The client's body, byte for byte: forwarded untouched unless an alias rewrites `model`. */
  body: Buffer;
  /** The parsed body, for the fields the gateway reads. */
  json: Readonly<Record<string, unknown>>;
  /** The headers for the upstream request (the gateway's, then the client's allowed ones). */
  headers: Record<string, string>;
  /** The client's own headers, as received (read for the session id). */
  clientHeaders: Readonly<Record<string, string | string[] | undefined>>;
  /** Per-request timeout overrides (request headers). */
  timeouts: Partial<Timeouts>;
  /** The request's own logger: every line it writes carries the request id. */
  log: LineLog;
  /**
   * The gateway added `stream_options.include_usage` for its ledger: the usage-only chunk is taken out
   * of the stream, so the client receives what it asked for.
   */
  hideUsage?: boolean;
  /** The endpoint the request asked for (`x-gateway.endpoint`): tried first when it serves the model. */
  preferEndpoint?: string | undefined;
  /** The request's trace span when tracing is on: each upstream attempt gets a child span. */
  span?: RequestSpan | undefined;
}

/**
 * What happened to a request, for its access line: filled in by the controller and the services as
 * the request goes, read when the response closes. Flat fields only (strings, numbers, booleans): the
 * access line writes them as they are, in this order.
 */
// A type rather than an interface: the access line takes it as a record of flat fields.
export type RequestTrace = {
  /** The model (or alias) the client asked for. */
  model?: string;
  stream?: boolean;
  /** The model that answered (an alias's target). */
  servedModel?: string;
  endpoint?: string;
  attempts?: number;
  ttfbMs?: number;
  upstreamStatus?: number;
  /** Endpoint that continued a stream broken mid-answer. */
  continuedOn?: string;
  /** What the response cache did: answered (`HIT`), looked and missed, or was skipped. */
  cache?: 'HIT' | 'MISS' | 'BYPASS';
  /** A second endpoint was raced after the hedge delay. */
  hedged?: boolean;
  /** Time spent waiting on upstreams (attempts in flight), in ms. */
  upstreamMs?: number;
  /** The scope of the limit that refused the request (key, team, model, global). */
  limitScope?: string;
  /** The error the client got (`client_closed` when it left first). */
  errorCode?: string;
  /** The virtual key that called (its id, never its secret). */
  keyId?: string;
  /**
   * Why a client credential was refused, for the operator (the client's code is `invalid_api_key`
   * whatever it was): `missing`, `malformed`, `unknown_key`, `expired`, `revoked`, or a JWT's
   * `jwt_expired`, `jwt_signature`, `jwt_algorithm`, `jwt_not_yet_valid`, `jwt_claims`, `jwt_invalid`.
   */
  authFailure?: string;
  /** Usage the upstream reported. */
  promptTokens?: number;
  completionTokens?: number;
  /** The request's `x-gateway.metadata`, as JSON (the ledger has it as an object). */
  metadata?: string;
  /** Events relayed to a stream's client (a completion estimate when no usage came). */
  streamEvents?: number;
  /** Characters of a JSON answer's messages (a completion estimate when no usage came). */
  answerChars?: number;
};
