/**
 * The headers of a completion request to an upstream. Only an allow-list of the client's headers goes
 * upstream: a client's headers must not be able to change how the upstream reads the gateway's own
 * request (a server that keeps its first 1,000 headers drops the key that comes after 1,000 junk ones,
 * answers 401, and the endpoint looks misconfigured). The gateway's own headers come first.
 */
import { DEFAULT_FORWARDED_HEADERS, NEVER_FORWARDED } from '../../config/forwarded-headers.js';

/** Client headers forwarded at most, and the longest value and the most bytes forwarded. */
const MAX_FORWARDED_HEADERS = 32;
const MAX_FORWARDED_VALUE_BYTES = 4 * 1024;
const MAX_FORWARDED_BYTES = 16 * 1024;

export type HeaderMap = Readonly<Record<string, string | string[] | undefined>>;

/** The allow-list in the form a request reads it: exact names, and prefixes. */
interface AllowList {
  names: readonly string[];
  prefixes: readonly string[];
}

let compiledFor: readonly string[] | undefined;
let compiled: AllowList = { names: DEFAULT_FORWARDED_HEADERS, prefixes: [] };

/** The default names plus the configured ones; recomputed only when a reload brings another list. */
function allowList(configured: readonly string[]): AllowList {
  if (configured === compiledFor) return compiled;
  const names = new Set(DEFAULT_FORWARDED_HEADERS);
  const prefixes: string[] = [];
  for (const entry of configured) {
    if (entry.endsWith('*')) prefixes.push(entry.slice(0, -1));
    else names.add(entry);
  }
  compiledFor = configured;
  compiled = { names: [...names], prefixes };
  return compiled;
}

/**
 * The gateway's headers (the body is JSON whatever the client's content-type said, as curl -d sends
 * form encoding; answers uncompressed, since they are relayed event by event; our request id), then
 * the client's allowed headers: at most MAX_FORWARDED_HEADERS, none longer than
 * MAX_FORWARDED_VALUE_BYTES, MAX_FORWARDED_BYTES in all. Node gives header names in lower case.
 */
export function forwardableHeaders(
  incoming: HeaderMap,
  requestId: string,
  configured: readonly string[] = [],
): Record<string, string> {
  const out: Record<string, string> = {
    'content-type': 'application/json',
    'accept-encoding': 'identity',
    'x-request-id': requestId,
  };
  const allowed = allowList(configured);
  const listed = connectionListed(incoming.connection);
  const budget = { count: 0, bytes: 0 };
  // The allow-list is walked, not the client's headers: a thousand junk headers cost nothing here.
  for (const name of allowed.names) add(out, name, incoming[name], listed, budget);
  if (allowed.prefixes.length > 0) {
    for (const name in incoming) {
      if (budget.count >= MAX_FORWARDED_HEADERS) break;
      if (out[name] !== undefined || NEVER_FORWARDED.has(name) || name.startsWith('x-gateway-')) continue;
      if (allowed.prefixes.some((p) => name.startsWith(p))) add(out, name, incoming[name], listed, budget);
    }
  }
  return out;
}

function add(
  out: Record<string, string>,
  name: string,
  raw: string | string[] | undefined,
  listed: Set<string> | undefined,
  budget: { count: number; bytes: number },
): void {
  if (raw === undefined || listed?.has(name) || budget.count >= MAX_FORWARDED_HEADERS) return;
  const value = Array.isArray(raw) ? raw.join(', ') : raw;
  // Header values are latin1 on the wire: their length is their size.
  if (value.length > MAX_FORWARDED_VALUE_BYTES) return;
  if (budget.bytes + name.length + value.length > MAX_FORWARDED_BYTES) return;
  budget.count++;
  budget.bytes += name.length + value.length;
  out[name] = value;
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
