/** Which client request headers may go upstream: read by the config schema and the forwarder. */

/**
 * Client headers forwarded by default: content negotiation, the client's identity, W3C trace context,
 * and the vendor headers of OpenAI's API (for hosted OpenAI-compatible upstreams). `FORWARD_HEADERS`
 * adds more (a name, or a prefix ending in `*`).
 */
export const DEFAULT_FORWARDED_HEADERS: readonly string[] = [
  'accept',
  'accept-language',
  'user-agent',
  'traceparent',
  'tracestate',
  'baggage',
  'openai-organization',
  'openai-project',
  'openai-beta',
];

/**
 * Never forwarded, even when configured: hop-by-hop headers (RFC 9110 §7.6.1), credentials (each
 * endpoint gets its own key), and what the gateway sets or re-encodes itself.
 */
export const NEVER_FORWARDED: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'authorization',
  'x-api-key',
  'api-key',
  'cookie',
  'content-length',
  'content-encoding',
  'content-type',
  'accept-encoding',
  'expect',
  'x-request-id',
]);
