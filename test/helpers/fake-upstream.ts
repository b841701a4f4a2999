import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A scriptable OpenAI-compatible upstream on an ephemeral port. Each chat request takes the next
 * scripted behaviour (or the default: a normal answer, streamed when the request asks for it).
 */
export type Behavior =
  /**
   * A normal answer, streamed if asked. Like vLLM, it honours `continue_final_message`: given the start
   * of its own answer as a final assistant message, it sends only the rest (`echoChars` re-sends that
   * many characters of the prefix first, as a server that repeats itself would).
   */
  | { type: 'answer'; text?: string; delayMs?: number; echoChars?: number }
  | {
      type: 'sse';
      /** Raw event payloads (`data: <payload>\n\n` each); defaults to a normal answer's chunks. */
      events?: string[];
      text?: string;
      firstDelayMs?: number;
      delayMs?: number;
      /** What happens after the events: `done` sends [DONE]; the others break the stream. */
      then?: 'done' | 'end-without-done' | 'reset' | 'hang';
      headers?: Record<string, string>;
    }
  /**
   * An event stream whose raw bytes are written as given, one write each (a string is UTF-8; a Buffer
   * may cut a character), then ended with `then` (default: `done`, the end of the response).
   */
  | { type: 'raw-sse'; chunks: Array<string | Buffer>; then?: 'done' | 'reset' | 'hang'; delayMs?: number }
  /** A TCP cut at byte `at` of `bytes`: what comes before it is written in one write, then a reset. */
  | { type: 'cut'; bytes: Buffer; at: number }
  | { type: 'json'; status?: number; body: unknown; headers?: Record<string, string>; delayMs?: number }
  | { type: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  | { type: 'hang' }
  | { type: 'hang-after-headers'; contentType?: string }
  | { type: 'reset' }
  | { type: 'empty' }
  /** Anything else: the test writes the response itself. */
  | { type: 'custom'; handle: (req: IncomingMessage, res: ServerResponse) => void };

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
  /** Chat requests without `Authorization: Bearer <requireKey>` get 401, as a real server would. */
  requireKey?: string;
}

export class FakeUpstream {
  readonly name: string;
  models: string[];
  /** Behaviour of GET /v1/models: a normal list unless set. */
  modelsBehavior: Behavior | undefined;
  readonly requests: RecordedRequest[] = [];
  readonly modelRequests: RecordedRequest[] = [];
  defaultBehavior: Behavior = { type: 'answer' };
  /** Connections accepted so far: how many the gateway opened (keep-alive reuses them). */
  connections = 0;
  private readonly queue: Behavior[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly waiters: Array<{ count: number; resolve: (r: RecordedRequest) => void }> = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly closedBySocket = new WeakMap<Socket, Promise<number>>();

  private constructor(
    private readonly server: http.Server,
    private readonly options: FakeUpstreamOptions,
  ) {
    this.name = options.name ?? 'fake';
    this.models = options.models ?? ['test-model'];
    server.on('connection', (socket: Socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res));
  }

  static async start(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
    const server = http.createServer({ keepAliveTimeout: 30_000 });
    if (options.maxHeadersCount !== undefined) server.maxHeadersCount = options.maxHeadersCount;
    const upstream = new FakeUpstream(server, options);
    server.listen(options.port ?? 0, '127.0.0.1');
    await once(server, 'listening');
    return upstream;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
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

  get openSockets(): number {
    return this.sockets.size;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.server.close();
    for (const s of this.sockets) s.destroy();
    if (this.server.listening) await once(this.server, 'close').catch(() => undefined);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parts: Buffer[] = [];
    for await (const chunk of req) parts.push(chunk as Buffer);
    const body = Buffer.concat(parts);
    let json: Record<string, unknown> | undefined;
    try {
      json = body.length ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : undefined;
    } catch {
      json = undefined;
    }
    const closed = this.socketClosed(req.socket);
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: req.headers,
      rawHeaderNames: req.rawHeaders.filter((_, i) => i % 2 === 0),
      body,
      json,
      receivedAt: Date.now(),
      closed,
    };

    if (req.method === 'GET' && req.url === '/v1/models') {
      this.modelRequests.push(record);
      const behavior = this.modelsBehavior ?? {
        type: 'json',
        body: {
          object: 'list',
          data: this.models.map((id) => ({ id, object: 'model', created: 1700000000, owned_by: this.name })),
        },
      };
      await this.respond(behavior, req, res, json);
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}`, type: 'not_found' } }));
      return;
    }
    this.requests.push(record);
    if (
      this.options.requireKey !== undefined &&
      req.headers.authorization !== `Bearer ${this.options.requireKey}`
    ) {
      sendJson(res, 401, { error: { message: 'Invalid API key', type: 'authentication_error' } });
      return;
    }
    for (const w of [...this.waiters]) {
      if (this.requests.length >= w.count) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(this.requests[w.count - 1]!);
      }
    }
    await this.respond(this.queue.shift() ?? this.defaultBehavior, req, res, json);
  }

  private async respond(
    behavior: Behavior,
    req: IncomingMessage,
    res: ServerResponse,
    json: Record<string, unknown> | undefined,
  ): Promise<void> {
    const model = typeof json?.model === 'string' ? json.model : (this.models[0] ?? 'test-model');
    switch (behavior.type) {
      case 'answer': {
        if (behavior.delayMs) await this.delay(behavior.delayMs);
        const text = continuationOf(
          behavior.text ?? `Hello from ${this.name}.`,
          json,
          behavior.echoChars ?? 0,
        );
        if (json?.stream === true) {
          const events = streamEvents(model, text);
          const usage = (json.stream_options as { include_usage?: boolean } | undefined)?.include_usage;
          if (usage)
            events.push(
              JSON.stringify({
                id: 'chatcmpl-cont',
                object: 'chat.completion.chunk',
                created: 1,
                model,
                choices: [],
                usage: { prompt_tokens: 50, completion_tokens: 7, total_tokens: 57 },
              }),
            );
          await this.respond({ type: 'sse', events }, req, res, json);
        } else {
          sendJson(res, 200, completion(model, text));
        }
        return;
      }
      case 'json':
        if (behavior.delayMs) await this.delay(behavior.delayMs);
        sendJson(res, behavior.status ?? 200, behavior.body, behavior.headers);
        return;
      case 'status':
        sendJson(
          res,
          behavior.status,
          behavior.body ?? {
            error: { message: `upstream ${this.name} says ${behavior.status}`, type: 'server_error' },
          },
          behavior.headers,
        );
        return;
      case 'hang':
        return;
      case 'hang-after-headers':
        res.writeHead(200, { 'content-type': behavior.contentType ?? 'text/event-stream' });
        res.flushHeaders();
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'custom':
        behavior.handle(req, res);
        return;
      case 'empty':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '0' });
        res.end();
        return;
      case 'raw-sse': {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.flushHeaders();
        for (const [i, chunk] of behavior.chunks.entries()) {
          if (i > 0 && behavior.delayMs) await this.delay(behavior.delayMs);
          if (res.destroyed) return;
          await new Promise<void>((resolve) => res.write(chunk, () => resolve()));
        }
        if (behavior.then === 'reset') req.socket.destroy();
        else if (behavior.then !== 'hang') res.end();
        return;
      }
      case 'cut': {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.flushHeaders();
        if (behavior.at === 0) {
          req.socket.destroy();
          return;
        }
        // The cut comes once the bytes before it are on the socket, so that it cannot overtake them.
        res.write(behavior.bytes.subarray(0, behavior.at), () => req.socket.destroy());
        return;
      }
      case 'sse': {
        const events = behavior.events ?? streamEvents(model, behavior.text ?? `Hello from ${this.name}.`);
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-cache',
          ...behavior.headers,
        });
        res.flushHeaders();
        if (behavior.firstDelayMs) await this.delay(behavior.firstDelayMs);
        for (let i = 0; i < events.length; i++) {
          if (i > 0 && behavior.delayMs) await this.delay(behavior.delayMs);
          if (res.destroyed) return;
          // Wait until each event is handed to the socket, so a break that follows cannot overtake it.
          await new Promise<void>((resolve) => res.write(`data: ${events[i]}\n\n`, () => resolve()));
        }
        const then = behavior.then ?? 'done';
        if (then === 'done') res.end('data: [DONE]\n\n');
        else if (then === 'end-without-done') res.end();
        else if (then === 'reset') req.socket.destroy();
        return;
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

  private delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }
}

/** The rest of `text` after a final assistant message that starts it, when asked to continue it. */
function continuationOf(text: string, json: Record<string, unknown> | undefined, echoChars: number): string {
  if (json?.continue_final_message !== true || !Array.isArray(json.messages)) return text;
  const last = json.messages.at(-1) as { role?: string; content?: unknown } | undefined;
  if (last?.role !== 'assistant' || typeof last.content !== 'string' || !text.startsWith(last.content))
    return text;
  return last.content.slice(last.content.length - echoChars) + text.slice(last.content.length);
}

export function completion(model: string, text: string) {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: 1700000000,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
    usage: {
      prompt_tokens: 5,
      completion_tokens: text.split(' ').length,
      total_tokens: 5 + text.split(' ').length,
    },
  };
}

/** The chunks of a normal streamed answer: a role delta, one delta per word, a finish_reason chunk. */
export function streamEvents(model: string, text: string): string[] {
  const base = { id: 'chatcmpl-test', object: 'chat.completion.chunk', created: 1700000000, model };
  const words = text.split(/(?<= )/);
  return [
    JSON.stringify({
      ...base,
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
    }),
    ...words.map((w) =>
      JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: w }, finish_reason: null }] }),
    ),
    JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
  ];
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
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
