/**
 * Headers the gateway never forwards upstream: hop-by-hop headers (RFC 9110 §7.6.1), the client's own
 * credentials (each endpoint gets its own key), and what the gateway sets or re-encodes itself.
 */
const NEVER_FORWARD: ReadonlySet<string> = new Set([
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
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
]);

export type HeaderMap = Readonly<Record<string, string | string[] | undefined>>;

/**
 * The headers of a completion request to an upstream: the client's forwardable headers, our request
 * id, and what the gateway itself decides. The body is JSON whatever the client's content-type said
 * (curl -d sends form encoding); answers are asked for uncompressed, since they are relayed chunk by
 * chunk. Node gives header names in lower case.
 */
export function forwardableHeaders(incoming: HeaderMap, requestId: string): Record<string, string> {
  const out: Record<string, string> = {};
  const listed = connectionListed(incoming.connection);
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined || NEVER_FORWARD.has(name) || listed?.has(name)) continue;
    if (name.startsWith('x-gateway-') || name.startsWith('sec-') || name.startsWith('cf-')) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  out['x-request-id'] = requestId;
  out['content-type'] = 'application/json';
  out['accept-encoding'] = 'identity';
  return out;
}

/** Headers named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1); the usual values name none. */
function connectionListed(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined;
  const value = Array.isArray(connection) ? connection.join(',') : connection;
  const lower = value.trim().toLowerCase();
  if (lower === 'keep-alive' || lower === 'close' || lower === '') return undefined;
  return new Set(
    lower
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}
