import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A simulated model server for benchmarks: OpenAI-compatible JSON and SSE with a configurable time to
 * first token, chunk count and delay, and a GPU-like slowdown as concurrent requests pile up.
 */
export interface ModelServerOptions {
  name: string;
  /** Time to first token for one request alone. */
  ttftMs: number | (() => number);
  chunks: number;
  chunkDelayMs: number;
  /** Each request in flight beyond the first stretches every delay by this factor (batching slowdown). */
  slowdownPerRequest?: number;
  port?: number;
}

export class ModelServer {
  requests = 0;
  inFlight = 0;
  private constructor(
    private readonly server: http.Server,
    readonly options: ModelServerOptions,
  ) {}

  static async start(options: ModelServerOptions): Promise<ModelServer> {
    const server = http.createServer({ keepAliveTimeout: 60_000 });
    const ms = new ModelServer(server, options);
    server.on('request', (req, res) => void ms.handle(req, res));
    server.listen(options.port ?? 0, '127.0.0.1');
    await once(server, 'listening');
    return ms;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close').catch(() => undefined);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    if (req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'bench-model', object: 'model' }] }));
      return;
    }
    this.requests++;
    this.inFlight++;
    let closed = false;
    res.once('close', () => {
      closed = true;
    });
    try {
      const stream = parts.length > 0 && Buffer.concat(parts).includes('"stream":true');
      const stretch = () => 1 + (this.options.slowdownPerRequest ?? 0) * Math.max(0, this.inFlight - 1);
      const ttft = typeof this.options.ttftMs === 'function' ? this.options.ttftMs() : this.options.ttftMs;
      await sleep(ttft * stretch());
      if (closed) return;
      const chunk = (i: number) =>
        `data: {"id":"b","object":"chat.completion.chunk","created":1,"model":"bench-model","choices":[{"index":0,"delta":{"content":"tok${i} "},"finish_reason":null}]}\n\n`;
      if (!stream) {
        await sleep(this.options.chunkDelayMs * this.options.chunks * stretch());
        const text = Array.from({ length: this.options.chunks }, (_, i) => `tok${i}`).join(' ');
        const body = JSON.stringify({
          id: 'b',
          object: 'chat.completion',
          created: 1,
          model: 'bench-model',
          choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
        });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (let i = 0; i < this.options.chunks && !closed; i++) {
        res.write(chunk(i));
        if (this.options.chunkDelayMs > 0) await sleep(this.options.chunkDelayMs * stretch());
      }
      if (!closed) res.end('data: [DONE]\n\n');
    } finally {
      this.inFlight--;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
