import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A tiny OpenAI-compatible model server for `npm run demo`: it "generates" text word by word at a chosen
 * speed and, if asked, fails now and then the way a real GPU deployment on a cheap lease does. Every
 * demo server gives the same answer to the same conversation, and, as vLLM does, continues a final
 * assistant message when asked (`continue_final_message`), so that a repaired answer reads as one.
 */
export interface DemoUpstreamOptions {
  name: string;
  models: string[];
  /** Delay before the first token. */
  firstTokenMs: number;
  /** Delay between tokens. */
  tokenMs: number;
  /** Chance (0..1) of a 503 before answering, of a reset connection, and of dying mid-stream. */
  failures?: { unavailable: number; reset: number; midStream: number };
  random?: () => number;
}

const PHRASES = [
  'Akash Network is a decentralized cloud where anyone can rent out spare GPUs.',
  'The gateway sends each request to the healthiest endpoint that serves the model.',
  'When a provider disappears, the request quietly moves on to the next one.',
  'Streams are relayed token by token, with no buffering in between.',
  'Priority tiers keep cheap endpoints busy and expensive ones in reserve.',
  'Weights split traffic between endpoints of the same tier.',
];

export class DemoUpstream {
  private readonly random: () => number;

  private constructor(
    private readonly server: http.Server,
    readonly options: DemoUpstreamOptions,
  ) {
    this.random = options.random ?? Math.random;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch(() => res.destroy());
    });
  }

  static async start(options: DemoUpstreamOptions): Promise<DemoUpstream> {
    const server = http.createServer();
    const upstream = new DemoUpstream(server, options);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return upstream;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close').catch(() => undefined);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.method === 'GET' && req.url === '/v1/models') {
      json(res, 200, {
        object: 'list',
        data: this.options.models.map((id) => ({
          id,
          object: 'model',
          created: 1735689600,
          owned_by: this.options.name,
        })),
      });
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      json(res, 404, { error: { message: `Not found: ${req.method} ${req.url}`, type: 'not_found_error' } });
      return;
    }
    let body: {
      model?: string;
      stream?: boolean;
      messages?: Array<{ role?: unknown; content?: unknown }>;
      stream_options?: { include_usage?: boolean };
      continue_final_message?: boolean;
    };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
    } catch {
      json(res, 400, { error: { message: 'Invalid JSON body', type: 'invalid_request_error' } });
      return;
    }
    const model = body.model ?? '';
    if (!this.options.models.includes(model)) {
      json(res, 404, {
        error: {
          message: `The model '${model}' does not exist`,
          type: 'not_found_error',
          code: 'model_not_found',
        },
      });
      return;
    }
    const failures = this.options.failures;
    if (failures && this.random() < failures.unavailable) {
      json(res, 503, { error: { message: `${this.options.name} is overloaded`, type: 'server_error' } });
      return;
    }
    if (failures && this.random() < failures.reset) {
      req.socket.destroy();
      return;
    }

    const words = answerFor(body.messages ?? [], body.continue_final_message === true).split(/(?<= )/);
    const id = `chatcmpl-demo-${Math.floor(this.random() * 1e12).toString(36)}`;
    const created = Math.floor(Date.now() / 1000);
    const usage = { prompt_tokens: 12, completion_tokens: words.length, total_tokens: 12 + words.length };
    await delay(this.options.firstTokenMs);
    if (body.stream !== true) {
      await delay(this.options.tokenMs * words.length);
      json(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [
          { index: 0, message: { role: 'assistant', content: words.join('') }, finish_reason: 'stop' },
        ],
        usage,
      });
      return;
    }
    const chunk = (delta: object, finish: string | null) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(chunk({ role: 'assistant', content: '' }, null));
    const dieAt = failures && this.random() < failures.midStream ? Math.floor(words.length / 2) : -1;
    for (let i = 0; i < words.length; i++) {
      if (res.destroyed) return;
      if (i === dieAt) {
        req.socket.destroy();
        return;
      }
      res.write(chunk({ content: words[i] }, null));
      await delay(this.options.tokenMs);
    }
    res.write(chunk({}, 'stop'));
    if (body.stream_options?.include_usage) {
      res.write(
        `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`,
      );
    }
    res.end('data: [DONE]\n\n');
  }
}

type Message = { role?: unknown; content?: unknown };

/** The demo's answer to a conversation: the same on every demo server (it depends on the prompt only). */
export function demoAnswer(messages: readonly Message[]): string {
  const prompt = [...messages].reverse().find((m) => m.role !== 'assistant')?.content;
  const text = typeof prompt === 'string' ? prompt.slice(0, 80) : 'your message';
  let hash = 0;
  for (let i = 0; i < text.length; i++) hash = (Math.imul(hash, 31) + text.charCodeAt(i)) >>> 0;
  const picked = [0, 1, 2].map((i) => PHRASES[(hash + i) % PHRASES.length]);
  return `You said: "${text}". ${picked.join(' ')}`;
}

/**
 * What to generate: the answer, or, when asked to continue a final assistant message that starts it,
 * the rest of it (a final message that does not start it is answered from the top).
 */
function answerFor(messages: readonly Message[], continueFinal: boolean): string {
  const last = messages.at(-1);
  if (!continueFinal || last?.role !== 'assistant' || typeof last.content !== 'string')
    return demoAnswer(messages);
  const answer = demoAnswer(messages.slice(0, -1));
  return answer.startsWith(last.content) ? answer.slice(last.content.length) : answer;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function delay(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
