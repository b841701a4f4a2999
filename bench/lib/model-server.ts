import { ModelServer as SimulatedModelServer } from '../../src/demo/model-server.js';

/**
 * A simulated model server for the routing and hedging benchmarks (the shared one of
 * src/demo/model-server.ts): a configurable time to first token, chunk count and delay, and a
 * GPU-like slowdown as concurrent requests pile up.
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
  private constructor(private readonly server: SimulatedModelServer) {}

  static async start(options: ModelServerOptions): Promise<ModelServer> {
    const text = Array.from({ length: options.chunks }, (_, i) => `tok${i}`).join(' ');
    let server: SimulatedModelServer | undefined = undefined;
    server = await SimulatedModelServer.start({
      name: options.name,
      models: ['bench-model'],
      port: options.port,
      respond: () => {
        // The load when the request arrives stretches its delays.
        const stretch = 1 + (options.slowdownPerRequest ?? 0) * Math.max(0, (server?.inFlight ?? 1) - 1);
        const ttft = typeof options.ttftMs === 'function' ? options.ttftMs() : options.ttftMs;
        return {
          type: 'answer',
          text,
          firstTokenMs: ttft * stretch,
          tokenMs: options.chunkDelayMs * stretch,
        };
      },
    });
    return new ModelServer(server);
  }

  get name(): string {
    return this.server.name;
  }

  /** Requests answered (set to 0 after a warm-up). */
  get requests(): number {
    return this.server.requests;
  }

  set requests(count: number) {
    this.server.requests = count;
  }

  get inFlight(): number {
    return this.server.inFlight;
  }

  get url(): string {
    return this.server.url;
  }

  stop(): Promise<void> {
    return this.server.stop();
  }
}
