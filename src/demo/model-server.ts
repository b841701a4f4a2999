import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * The simulated OpenAI-compatible model server: one for the demo (`npm run demo`), the tests (a
 * scriptable fake upstream) and the benchmarks. `GET /v1/models` lists its models; every
 * `POST /v1/chat/completions` is answered as its `respond` function says (a Behavior): a normal answer,
 * word by word when streamed, continuing a final assistant message as vLLM does, or any failure a real
 * deployment shows (a status, a reset, a hang, a cut at any byte, an unfinished stream…).
 */
export type Behavior =
  /**
   * A normal answer, streamed if asked (a role delta, one delta per word, a finish_reason chunk, the
   * usage chunk when `stream_options.include_usage` asks for it, [DONE]). Like vLLM, it honours
   * `continue_final_message`: given the start of `text` as a final assistant message, it sends only the
   * rest (`echoChars` re-sends that many characters of the prefix first, as a server that repeats itself
   * would). `firstTokenMs` and `tokenMs` pace it; `dieAfterWords` resets the connection after that many.
   */
  | {
      type: 'answer';
      text?: string;
      delayMs?: number;
      firstTokenMs?: number;
      tokenMs?: number;
      dieAfterWords?: number;
      echoChars?: number;
    }
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
  /** Anything else: the caller writes the response itself. */
  | { type: 'custom'; handle: (req: IncomingMessage, res: ServerResponse) => void };

/** A request as the server read it (chat, embeddings or a text completion). */
export interface ChatRequest {
  req: IncomingMessage;
  /** Which route it came to: `answer` behaviours answer in that route's shape. */
  route: 'chat' | 'embeddings' | 'completions';
  body: Buffer;
  /** The parsed body (undefined when it is not JSON). */
  json: Record<string, unknown> | undefined;
  model: string;
  stream: boolean;
}

export interface ModelServerOptions {
  /** Shown in default answers and errors. */
  name?: string;
  models?: string[];
  port?: number;
  /** Headers kept per request, as node's maxHeadersCount (later ones are dropped). */
  maxHeadersCount?: number;
  /** Requests without `Authorization: Bearer <requireKey>` get 401, as a real server would (vLLM's --api-key). */
  requireKey?: string;
  /** How to answer one chat request. */
  respond: (request: ChatRequest) => Behavior | Promise<Behavior>;
  /** How to answer `GET /v1/models` (default: the list of `models`). */
  modelsBehavior?: () => Behavior | undefined;
  /** Told of every request, `/v1/models` included, before it is answered. */
  onRequest?: (request: ChatRequest, kind: 'chat' | 'models') => void;
}

export class ModelServer {
  readonly name: string;
  models: string[];
  /** Chat requests answered so far, and those in flight now. */
  requests = 0;
  inFlight = 0;
  /** Connections accepted so far: how many the gateway opened (keep-alive reuses them). */
  connections = 0;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Streams of a normal answer already built, by model and text (benchmarks ask for the same one). */
  private readonly eventCache = new Map<string, string[]>();

  private constructor(
    private readonly server: http.Server,
    private readonly options: ModelServerOptions,
  ) {
    this.name = options.name ?? 'model-server';
    this.models = options.models ?? ['test-model'];
    if (options.maxHeadersCount !== undefined) server.maxHeadersCount = options.maxHeadersCount;
    server.on('connection', (socket: Socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch(() => res.destroy());
    });
  }

  static async start(options: ModelServerOptions): Promise<ModelServer> {
    const server = http.createServer({ keepAliveTimeout: 30_000 });
    const ms = new ModelServer(server, options);
    server.listen(options.port ?? 0, '127.0.0.1');
    await once(server, 'listening');
    return ms;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
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
    // The path without its query; Azure's deployment paths (`/openai/deployments/{d}/chat/completions`)
    // end like OpenAI's without their `/v1`.
    const pathname = (req.url ?? '/').split('?')[0]!;
    const route: ChatRequest['route'] = pathname.endsWith('/embeddings')
      ? 'embeddings'
      : pathname.endsWith('/completions') && !pathname.endsWith('/chat/completions')
        ? 'completions'
        : 'chat';
    const request: ChatRequest = {
      req,
      route,
      body,
      json,
      model: typeof json?.model === 'string' ? json.model : (this.models[0] ?? 'test-model'),
      stream: json?.stream === true,
    };
    const key = this.options.requireKey;
    const keyMissing = key !== undefined && req.headers.authorization !== `Bearer ${key}`;
    if (req.method === 'GET' && req.url?.endsWith('/v1/models')) {
      this.options.onRequest?.(request, 'models');
      if (keyMissing) {
        sendJson(res, 401, { error: { message: 'Invalid API key', type: 'authentication_error' } });
        return;
      }
      const behavior = this.options.modelsBehavior?.() ?? {
        type: 'json',
        body: {
          object: 'list',
          data: this.models.map((id) => ({ id, object: 'model', created: 1700000000, owned_by: this.name })),
        },
      };
      await this.answer(behavior, request, res);
      return;
    }
    const served = ['/chat/completions', '/embeddings', '/completions'].some((p) => pathname.endsWith(p));
    if (req.method !== 'POST' || !served) {
      sendJson(res, 404, { error: { message: `no route ${req.method} ${req.url}`, type: 'not_found' } });
      return;
    }
    this.options.onRequest?.(request, 'chat');
    if (keyMissing) {
      sendJson(res, 401, { error: { message: 'Invalid API key', type: 'authentication_error' } });
      return;
    }
    this.requests++;
    this.inFlight++;
    try {
      await this.answer(await this.options.respond(request), request, res);
    } finally {
      this.inFlight--;
    }
  }

  private async answer(behavior: Behavior, request: ChatRequest, res: ServerResponse): Promise<void> {
    const { req, json, model } = request;
    switch (behavior.type) {
      case 'answer': {
        if (behavior.delayMs) await this.delay(behavior.delayMs);
        const text = continuationOf(
          behavior.text ?? `Hello from ${this.name}.`,
          json,
          behavior.echoChars ?? 0,
        );
        if (request.route === 'embeddings') {
          sendJson(res, 200, embeddings(model, json?.input, json?.encoding_format === 'base64'));
          return;
        }
        // A chat answer stops at max_tokens (a word a token), as a model server's would.
        const cut = request.route === 'chat' ? upToMaxTokens(text, json) : undefined;
        const chatText = cut?.finish === 'length' ? cut.words.join('') : text;
        if (!request.stream) {
          if (behavior.firstTokenMs) await this.delay(behavior.firstTokenMs);
          if (behavior.tokenMs) await this.delay(behavior.tokenMs * text.split(' ').length);
          if (res.destroyed) return;
          sendJson(
            res,
            200,
            request.route === 'completions'
              ? textCompletion(model, text, json)
              : completion(model, chatText, cut?.finish),
          );
          return;
        }
        const events =
          request.route === 'completions'
            ? textStreamEvents(model, text, json)
            : cut?.finish === 'length'
              ? streamEvents(model, chatText, 'length')
              : this.streamOf(model, text);
        const usage = (json?.stream_options as { include_usage?: boolean } | undefined)?.include_usage;
        if (usage) events.push(usageEvent(model));
        await this.writeEvents(req, res, events, {
          firstDelayMs: behavior.firstTokenMs,
          delayMs: behavior.tokenMs,
          dieAfter: behavior.dieAfterWords === undefined ? undefined : behavior.dieAfterWords + 1,
        });
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
        startStream(res);
        for (const [i, chunk] of behavior.chunks.entries()) {
          if (i > 0 && behavior.delayMs) await this.delay(behavior.delayMs);
          if (res.destroyed) return;
          await new Promise<void>((resolve) => res.write(chunk, () => resolve()));
        }
        if (behavior.then === 'reset') req.socket.destroy();
        else if (behavior.then !== 'hang') res.end();
        return;
      }
      case 'cut':
        startStream(res);
        if (behavior.at === 0) {
          req.socket.destroy();
          return;
        }
        // The cut comes once the bytes before it are on the socket, so that it cannot overtake them.
        res.write(behavior.bytes.subarray(0, behavior.at), () => req.socket.destroy());
        return;
      case 'sse': {
        const events = behavior.events ?? streamEvents(model, behavior.text ?? `Hello from ${this.name}.`);
        await this.writeEvents(req, res, events.slice(), {
          firstDelayMs: behavior.firstDelayMs,
          delayMs: behavior.delayMs,
          then: behavior.then,
          headers: behavior.headers,
        });
        return;
      }
    }
  }

  /** The events of a normal streamed answer, built once per model and text. */
  private streamOf(model: string, text: string): string[] {
    const key = `${model}\n${text}`;
    let events = this.eventCache.get(key);
    if (!events) {
      events = streamEvents(model, text);
      if (this.eventCache.size > 1_000) this.eventCache.clear();
      this.eventCache.set(key, events);
    }
    return events.slice();
  }

  private async writeEvents(
    req: IncomingMessage,
    res: ServerResponse,
    events: string[],
    options: {
      firstDelayMs?: number | undefined;
      delayMs?: number | undefined;
      /** Events written before a reset (none: all of them, then `then`). */
      dieAfter?: number | undefined;
      then?: 'done' | 'end-without-done' | 'reset' | 'hang' | undefined;
      headers?: Record<string, string> | undefined;
    },
  ): Promise<void> {
    startStream(res, options.headers);
    if (options.firstDelayMs) await this.delay(options.firstDelayMs);
    for (let i = 0; i < events.length; i++) {
      if (i > 0 && options.delayMs) await this.delay(options.delayMs);
      if (res.destroyed) return;
      if (i === options.dieAfter) {
        req.socket.destroy();
        return;
      }
      // Wait until each event is handed to the socket, so a break that follows cannot overtake it.
      await new Promise<void>((resolve) => res.write(`data: ${events[i]}\n\n`, () => resolve()));
    }
    const then = options.then ?? 'done';
    if (then === 'done') res.end('data: [DONE]\n\n');
    else if (then === 'end-without-done') res.end();
    else if (then === 'reset') req.socket.destroy();
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

function startStream(res: ServerResponse, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...headers });
  res.flushHeaders();
}

/** The rest of `text` after a final assistant message that starts it, when asked to continue it. */
function continuationOf(text: string, json: Record<string, unknown> | undefined, echoChars: number): string {
  if (json?.continue_final_message !== true || !Array.isArray(json.messages)) return text;
  const last = json.messages.at(-1) as { role?: string; content?: unknown } | undefined;
  if (last?.role !== 'assistant' || typeof last.content !== 'string' || !text.startsWith(last.content))
    return text;
  return last.content.slice(last.content.length - echoChars) + text.slice(last.content.length);
}

/** A non-streamed completion of `text`. */
export function completion(model: string, text: string, finish = 'stop') {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: 1700000000,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finish }],
    usage: {
      prompt_tokens: 5,
      completion_tokens: text.split(' ').length,
      total_tokens: 5 + text.split(' ').length,
    },
  };
}

/**
 * An embeddings answer: one small deterministic vector per input (as base64 of float32s when asked, as
 * the openai SDK does by default), usage by the input's length.
 */
export function embeddings(model: string, input: unknown, base64 = false) {
  const inputs = Array.isArray(input) ? (input as unknown[]) : [input];
  const texts = inputs.map((i) => (typeof i === 'string' ? i : JSON.stringify(i ?? '')));
  const tokens = texts.reduce((n, t) => n + Math.max(1, Math.ceil(t.length / 4)), 0);
  return {
    object: 'list',
    data: texts.map((t, index) => ({
      object: 'embedding',
      index,
      embedding: vector(t, base64),
    })),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}

function vector(text: string, base64: boolean): number[] | string {
  const v = Array.from({ length: 8 }, (_, k) => Math.round(Math.sin(text.length + k) * 1e6) / 1e6);
  return base64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v;
}

/** The words of an answer up to a request's `max_tokens` (a word a token), and why it stopped. */
function upToMaxTokens(text: string, json: Record<string, unknown> | undefined) {
  const words = text.split(/(?<= )/);
  const max = json?.max_completion_tokens ?? json?.max_tokens;
  if (typeof max === 'number' && Number.isInteger(max) && max > 0 && max < words.length)
    return { words: words.slice(0, max), finish: 'length' };
  return { words, finish: 'stop' };
}

/**
 * A (legacy) text completion answer, as vLLM gives it: `max_tokens` cuts it (a word a token,
 * finish_reason `length`), `echo` puts a text prompt before it, `n` answers that many choices.
 */
export function textCompletion(model: string, text: string, json?: Record<string, unknown>) {
  const { words, finish } = upToMaxTokens(text, json);
  const n = typeof json?.n === 'number' && Number.isInteger(json.n) && json.n > 1 ? Math.min(json.n, 16) : 1;
  const prefix = json?.echo === true && typeof json.prompt === 'string' ? json.prompt : '';
  return {
    id: 'cmpl-test',
    object: 'text_completion',
    created: 1700000000,
    model,
    choices: Array.from({ length: n }, (_, index) => ({
      index,
      text: prefix + words.join(''),
      logprobs: null,
      finish_reason: finish,
    })),
    usage: {
      prompt_tokens: 5,
      completion_tokens: words.length * n,
      total_tokens: 5 + words.length * n,
    },
  };
}

/** A text completion streamed: one chunk per word (up to `max_tokens`), then the finish reason. */
export function textStreamEvents(model: string, text: string, json?: Record<string, unknown>): string[] {
  const base = { id: 'cmpl-test', object: 'text_completion', created: 1700000000, model };
  const { words, finish } = upToMaxTokens(text, json);
  return [
    ...words.map((w) =>
      JSON.stringify({ ...base, choices: [{ index: 0, text: w, logprobs: null, finish_reason: null }] }),
    ),
    JSON.stringify({ ...base, choices: [{ index: 0, text: '', logprobs: null, finish_reason: finish }] }),
  ];
}

/** The chunks of a normal streamed answer: a role delta, one delta per word, a finish_reason chunk. */
export function streamEvents(model: string, text: string, finish = 'stop'): string[] {
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
    JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: finish }] }),
  ];
}

/** The usage-only chunk asked for with `stream_options.include_usage`. */
function usageEvent(model: string): string {
  return JSON.stringify({
    id: 'chatcmpl-cont',
    object: 'chat.completion.chunk',
    created: 1,
    model,
    choices: [],
    usage: { prompt_tokens: 50, completion_tokens: 7, total_tokens: 57 },
  });
}

export function sendJson(
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
