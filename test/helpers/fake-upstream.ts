import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ModelServer, type Behavior, type ChatRequest } from '../../src/demo/model-server.js';

export { completion, streamEvents } from '../../src/demo/model-server.js';
export type { Behavior };

/**
 * A scriptable OpenAI-compatible upstream on an ephemeral port: the shared simulated model server
 * (src/demo/model-server.ts) with a script and a record. Each chat request takes the next scripted
 * behaviour (or the default: a normal answer, streamed when the request asks for it).
 */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Header names in the order they came. */
  rawHeaderNames: string[];
  body: Buffer;
  json: Record<string, unknown> | undefined;
  receivedAt: number;
  /** Resolves with the time the upstream saw the request's socket close. */
  closed: Promise<number>;
}

export interface FakeUpstreamOptions {
  name?: string;
  models?: string[];
  port?: number;
  /** Headers kept per request, as node's maxHeadersCount (later ones are dropped). */
  maxHeadersCount?: number;
  /** Requests without `Authorization: Bearer <requireKey>` get 401, as a real server would (vLLM's --api-key). */
  requireKey?: string;
}

export class FakeUpstream {
  /** Behaviour of GET /v1/models: a normal list unless set. */
  modelsBehavior: Behavior | undefined;
  readonly requests: RecordedRequest[] = [];
  readonly modelRequests: RecordedRequest[] = [];
  defaultBehavior: Behavior = { type: 'answer' };
  private readonly queue: Behavior[] = [];
  private readonly waiters: Array<{ count: number; resolve: (r: RecordedRequest) => void }> = [];
  private readonly closedBySocket = new WeakMap<Socket, Promise<number>>();
  private server!: ModelServer;

  private constructor() {}

  static async start(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
    const upstream = new FakeUpstream();
    upstream.server = await ModelServer.start({
      ...options,
      respond: () => upstream.queue.shift() ?? upstream.defaultBehavior,
      modelsBehavior: () => upstream.modelsBehavior,
      onRequest: (request, kind) => upstream.record(request, kind),
    });
    return upstream;
  }

  get name(): string {
    return this.server.name;
  }

  get models(): string[] {
    return this.server.models;
  }

  set models(models: string[]) {
    this.server.models = models;
  }

  /** Connections accepted so far: how many the gateway opened (keep-alive reuses them). */
  get connections(): number {
    return this.server.connections;
  }

  get port(): number {
    return this.server.port;
  }

  get url(): string {
    return this.server.url;
  }

  get openSockets(): number {
    return this.server.openSockets;
  }

  /** Queue behaviours for the next chat requests, in order. */
  script(...behaviors: Behavior[]): this {
    this.queue.push(...behaviors);
    return this;
  }

  /** Resolves when the n-th chat request (1-based, counting all so far) has arrived. */
  waitForRequest(n = this.requests.length + 1): Promise<RecordedRequest> {
    const existing = this.requests[n - 1];
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve) => this.waiters.push({ count: n, resolve }));
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  private record({ req, body, json }: ChatRequest, kind: 'chat' | 'models'): void {
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: req.headers,
      rawHeaderNames: req.rawHeaders.filter((_, i) => i % 2 === 0),
      body,
      json,
      receivedAt: Date.now(),
      closed: this.socketClosed(req.socket),
    };
    if (kind === 'models') {
      this.modelRequests.push(record);
      return;
    }
    this.requests.push(record);
    for (const w of [...this.waiters]) {
      if (this.requests.length >= w.count) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(this.requests[w.count - 1]!);
      }
    }
  }

  /** One close promise per socket: keep-alive sockets carry many requests. */
  private socketClosed(socket: Socket): Promise<number> {
    let closed = this.closedBySocket.get(socket);
    if (!closed) {
      closed = new Promise<number>((resolve) => {
        if (socket.destroyed) resolve(Date.now());
        else socket.once('close', () => resolve(Date.now()));
      });
      this.closedBySocket.set(socket, closed);
    }
    return closed;
  }
}

/** A port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** A URL on which nothing listens: connections are refused. */
export async function refusedUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}
