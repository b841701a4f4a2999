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

export function forwardableHeaders(incoming: HeaderMap): Record<string, string> {
  const out: Record<string, string> = {};
  const connectionListed = new Set(
    String(incoming.connection ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  for (const [rawName, value] of Object.entries(incoming)) {
    const name = rawName.toLowerCase();
    if (value === undefined || NEVER_FORWARD.has(name) || connectionListed.has(name)) continue;
    if (name.startsWith('x-gateway-') || name.startsWith('sec-') || name.startsWith('cf-')) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}
