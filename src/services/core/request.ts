import type { Timeouts } from '../../config/types.js';

export interface CompletionRequest {
  /** The model (or alias) the client asked for. */
  model: string;
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
}

/** What happened, for the access log and response headers; filled in as the request goes. */
export interface CompletionTrace {
  endpoint?: string;
  attempts?: number;
  ttfbMs?: number;
  upstreamStatus?: number;
  servedModel?: string;
  /** Endpoint that continued a stream broken mid-answer. */
  continuedOn?: string;
}
