import { providerOf } from '../providers/providers.js';
import { Pool, type Dispatcher } from 'undici';
import type { EndpointConfig } from '../../config/types.js';
import type { AttemptFailure } from '../core/outcomes.js';

export interface UpstreamRequest {
  endpoint: EndpointConfig;
  method: 'GET' | 'POST';
  /** Path below the endpoint's base URL, e.g. `/v1/chat/completions`. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  signal: AbortSignal;
}

export type UpstreamResponse = Dispatcher.ResponseData;

export type UpstreamHandler = Dispatcher.DispatchHandler;

/**
 * Sends requests to endpoints through one keep-alive undici Pool per endpoint. Timeouts other than
 * connect are enforced by the caller (it knows the phase: first byte, idle, total), so undici's own
 * header and body timeouts are off.
 */
export class Forwarder {
  private readonly pools = new Map<string, PoolEntry>();

  /** A request whose response is read as a stream (discovery, continuation). */
  async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const entry = this.pool(req.endpoint);
    return entry.pool.request({
      method: req.method,
      path: entry.basePath + req.path,
      headers: withKey(req.headers, entry),
      body: req.body ?? null,
      signal: req.signal,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  /**
   * A request whose response goes to `handler` as it arrives (undici's dispatch API): no response
   * stream, no promise per chunk, and backpressure through the handler's controller. The hot path of
   * every completion; the handler aborts it through the controller it is given.
   */
  dispatch(req: Omit<UpstreamRequest, 'signal'>, handler: UpstreamHandler): void {
    const entry = this.pool(req.endpoint);
    entry.pool.dispatch(
      {
        method: req.method,
        path: entry.basePath + req.path,
        headers: withKey(req.headers, entry),
        body: req.body ?? null,
        headersTimeout: 0,
        bodyTimeout: 0,
      },
      handler,
    );
  }

  /** An endpoint left the configuration: its connections close once their requests are done. */
  retire(name: string): void {
    const entry = this.pools.get(name);
    if (!entry) return;
    this.pools.delete(name);
    void entry.pool.close();
  }

  /** Releases every connection. Called after in-flight client requests are finished or cut. */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map(({ pool }) => pool.destroy()));
  }

  /** The endpoint's pool (created on first use, replaced when its URL or key changes) and its base path. */
  private pool(endpoint: EndpointConfig): PoolEntry {
    const existing = this.pools.get(endpoint.name);
    if (existing && existing.url === endpoint.url) {
      if (existing.apiKey !== endpoint.apiKey || existing.provider !== endpoint.provider) {
        existing.apiKey = endpoint.apiKey;
        existing.provider = endpoint.provider;
        Object.assign(existing, credentialsOf(endpoint));
      }
      return existing;
    }
    if (existing) void existing.pool.close();
    const url = new URL(endpoint.url);
    const entry: PoolEntry = {
      url: endpoint.url,
      apiKey: endpoint.apiKey,
      provider: endpoint.provider,
      ...credentialsOf(endpoint),
      basePath: url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, ''),
      pool: new Pool(url.origin, {
        connect: { timeout: endpoint.timeouts.connectMs },
        keepAliveTimeout: 10_000,
        keepAliveMaxTimeout: 60_000,
        headersTimeout: 0,
        bodyTimeout: 0,
      }),
    };
    this.pools.set(endpoint.name, entry);
    return entry;
  }
}

interface PoolEntry {
  url: string;
  pool: Pool;
  basePath: string;
  apiKey: string | undefined;
  provider: EndpointConfig['provider'];
  /** The endpoint's own credentials, made once rather than per request: a bearer token… */
  authorization: string | undefined;
  /** …or the headers of a provider that carries its key otherwise (Anthropic, Azure, Gemini). */
  credentials: Record<string, string> | undefined;
}

function credentialsOf(endpoint: EndpointConfig): Pick<PoolEntry, 'authorization' | 'credentials'> {
  const headers = providerOf(endpoint).credentials(endpoint);
  const names = Object.keys(headers);
  if (names.length === 0) return { authorization: undefined, credentials: undefined };
  if (names.length === 1 && names[0] === 'authorization')
    return { authorization: headers.authorization, credentials: undefined };
  return { authorization: undefined, credentials: headers };
}

/** The endpoint's key first: nothing the client sent can push it out of an upstream's header limit. */
function withKey(headers: Record<string, string>, entry: PoolEntry): Record<string, string> {
  if (entry.authorization) return { authorization: entry.authorization, ...headers };
  return entry.credentials ? { ...headers, ...entry.credentials } : headers;
}

/** Maps a transport error from undici (no HTTP response) to an attempt failure. */
export function transportFailure(err: unknown): AttemptFailure {
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code ?? 'UNKNOWN';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return { kind: 'timeout', phase: 'connect', message: 'connect timeout' };
  }
  const reason: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ENOTFOUND: 'host not found (DNS)',
    EAI_AGAIN: 'DNS lookup failed',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    EPIPE: 'connection closed while sending',
    UND_ERR_SOCKET: 'connection closed by upstream',
    UND_ERR_CLOSED: 'connection closed',
  };
  return { kind: 'connect', code, message: reason[code] ?? `transport error (${code})` };
}
