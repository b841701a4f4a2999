import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI, { APIError } from 'openai';
import { CLIENT_KEY, seededRandom, startGateway, type TestGateway } from './start-gateway.js';

/**
 * The chaos run of issue 9: three endpoints, one of which fails a third of the time with every fault
 * a model server on a cheap lease shows (a TCP cut at any byte, inside a multi-byte character too; a
 * run of bytes without a line break; a break right after the role chunk; an in-band error event, before
 * or after the answer started, with or without [DONE]; a stall; a close without [DONE]; 503 and 429; a
 * reset or a hang before the headers; an empty answer; a garbled or error-object JSON answer), while
 * the openai SDK sends requests, some with a thousand junk headers. Every fault is repairable (two
 * healthy endpoints), so every answer must arrive whole: none corrupted, none unreadable, no error.
 */

export const STREAM_FAULTS = [
  'cut',
  'no-line-break',
  'role-then-break',
  'error-event-then-done',
  'error-event-then-close',
  'error-event-first',
  'stall',
  'finish-then-close',
  'truncated',
  'tiny-chunks',
] as const;
export const ANY_FAULTS = ['status-503', 'status-429', 'reset', 'hang', 'empty'] as const;
export const JSON_FAULTS = ['garbled-json', 'error-object'] as const;
export type Fault =
  (typeof STREAM_FAULTS)[number] | (typeof ANY_FAULTS)[number] | (typeof JSON_FAULTS)[number];

/** The one true answer to a prompt: every endpoint gives it (multi-byte characters included). */
export function chaosAnswer(prompt: string): string {
  const words = ['Grüße', 'aus', 'Köln', '—', '東京', 'の', '🙂', 'gateway', 'keeps', 'answers', 'whole'];
  const out: string[] = [`${prompt}:`];
  for (let i = 0; i < 24; i++) out.push(words[(prompt.length * 7 + i * 3) % words.length]!);
  return out.join(' ');
}

interface Body {
  model?: string;
  stream?: boolean;
  messages?: Array<{ role?: string; content?: unknown }>;
  continue_final_message?: boolean;
}

/**
 * An OpenAI-compatible server that answers every prompt with chaosAnswer(), continues a final
 * assistant message as vLLM does, and, with `faultRate` > 0, fails that share of its requests with a
 * fault drawn from a seeded generator.
 */
export class ChaosUpstream {
  readonly faults = new Map<Fault, number>();
  requests = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** How often each prompt came: a request's draws depend on it, not on the order requests arrive in. */
  private readonly seen = new Map<string, number>();
  private random: () => number = Math.random;

  private constructor(
    private readonly server: http.Server,
    readonly name: string,
    private readonly faultRate: number,
    private readonly seed: number,
  ) {
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch(() => res.destroy());
    });
  }

  static async start(name: string, faultRate: number, seed: number): Promise<ChaosUpstream> {
    const server = http.createServer({ keepAliveTimeout: 30_000 });
    server.maxHeadersCount = 1000;
    const upstream = new ChaosUpstream(server, name, faultRate, seed);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return upstream;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close').catch(() => undefined);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    if (req.method === 'GET' && req.url === '/v1/models') {
      json(res, 200, { object: 'list', data: [{ id: 'chaos-model', object: 'model' }] });
      return;
    }
    if (req.headers.authorization !== `Bearer key-${this.name}`) {
      // As a real server: a key it cannot see is a 401 (what junk headers in front of it would cause).
      json(res, 401, { error: { message: 'invalid key' } });
      return;
    }
    this.requests++;
    const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as Body;
    const messages = body.messages ?? [];
    const last = messages.at(-1);
    const continuing = body.continue_final_message === true && last?.role === 'assistant';
    const asked = (continuing ? messages.at(-2) : last)?.content;
    const prompt = typeof asked === 'string' ? asked : '';
    const answer = chaosAnswer(prompt);
    const prefix = continuing && typeof last?.content === 'string' ? last.content : '';
    const text = answer.startsWith(prefix) ? answer.slice(prefix.length) : answer;
    const nth = this.seen.get(prompt) ?? 0;
    this.seen.set(prompt, nth + 1);
    this.random = seededRandom(this.seed + hash(prompt) * 31 + nth * 7919);
    const fault = this.random() < this.faultRate ? this.pick(body.stream === true) : undefined;
    if (fault) this.faults.set(fault, (this.faults.get(fault) ?? 0) + 1);
    if (body.stream === true) await this.stream(req, res, text, fault);
    else this.answer(req, res, text, fault);
  }

  private pick(stream: boolean): Fault {
    const pool: readonly Fault[] = stream
      ? [...STREAM_FAULTS, ...ANY_FAULTS]
      : [...JSON_FAULTS, ...ANY_FAULTS];
    return pool[Math.floor(this.random() * pool.length)]!;
  }

  private common(req: IncomingMessage, res: ServerResponse, fault: Fault | undefined): boolean {
    switch (fault) {
      case 'status-503':
        json(res, 503, { error: { message: 'overloaded' } }, { 'retry-after': '1' });
        return true;
      case 'status-429':
        json(res, 429, { error: { message: 'slow down' } }, { 'retry-after-ms': '50' });
        return true;
      case 'reset':
        req.socket.destroy();
        return true;
      case 'hang':
        return true;
      case 'empty':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '0' }).end();
        return true;
      default:
        return false;
    }
  }

  private answer(req: IncomingMessage, res: ServerResponse, text: string, fault: Fault | undefined): void {
    if (this.common(req, res, fault)) return;
    if (fault === 'garbled-json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"x", this is not json }');
      return;
    }
    if (fault === 'error-object') {
      json(res, 200, { error: { message: 'engine died', type: 'server_error' } });
      return;
    }
    json(res, 200, {
      id: `chatcmpl-${this.name}`,
      object: 'chat.completion',
      created: 1,
      model: 'chaos-model',
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 20, total_tokens: 25 },
    });
  }

  private async stream(
    req: IncomingMessage,
    res: ServerResponse,
    text: string,
    fault: Fault | undefined,
  ): Promise<void> {
    if (this.common(req, res, fault)) return;
    const base = {
      id: `chatcmpl-${this.name}`,
      object: 'chat.completion.chunk',
      created: 1,
      model: 'chaos-model',
    };
    const event = (delta: object, finish: string | null = null) =>
      `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    const role = event({ role: 'assistant', content: '' });
    const words = text.split(/(?<= )/).map((w) => event({ content: w }));
    const finish = event({}, 'stop');
    const done = 'data: [DONE]\n\n';
    const errorEvent = `data: ${JSON.stringify({ error: { message: 'CUDA error', type: 'InternalServerError', code: 500 } })}\n\n`;
    const some = Math.floor(this.random() * words.length);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const write = (chunk: string | Buffer) =>
      new Promise<void>((resolve) => res.write(chunk, () => resolve()));
    switch (fault) {
      case 'cut': {
        const all = Buffer.from([role, ...words, finish, done].join(''));
        const at = 1 + Math.floor(this.random() * (all.length - 2));
        await write(all.subarray(0, at));
        req.socket.destroy();
        return;
      }
      case 'no-line-break':
        await write([role, ...words.slice(0, some)].join(''));
        await write(`data: {"x":"${'x'.repeat(1100 * 1024)}`);
        req.socket.destroy();
        return;
      case 'role-then-break':
        await write(role);
        req.socket.destroy();
        return;
      case 'error-event-then-done':
      case 'error-event-then-close':
        await write([role, ...words.slice(0, some), errorEvent].join(''));
        if (fault === 'error-event-then-done') res.end(done);
        else res.end();
        return;
      case 'error-event-first':
        await write(errorEvent);
        res.end(done);
        return;
      case 'stall':
        await write([role, ...words.slice(0, some)].join(''));
        return;
      case 'finish-then-close':
        await write([role, ...words, finish].join(''));
        req.socket.destroy();
        return;
      case 'truncated':
        await write([role, ...words.slice(0, some)].join(''));
        res.end();
        return;
      case 'tiny-chunks': {
        // Not a fault: a whole answer in 1 to 7 byte pieces, characters cut across them.
        const all = Buffer.from([role, ...words, finish, done].join(''));
        for (let at = 0; at < all.length;) {
          const n = 1 + Math.floor(this.random() * 7);
          await write(all.subarray(at, at + n));
          at += n;
        }
        res.end();
        return;
      }
      default:
        await write([role, ...words, finish].join(''));
        res.end(done);
    }
  }
}

function hash(text: string): number {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, 31) + text.charCodeAt(i)) >>> 0;
  return h;
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export interface ChaosResult {
  requests: number;
  streams: number;
  whole: number;
  /** Answers that arrived without an error but not as the upstream gave them. */
  corrupted: Array<{ prompt: string; got: string }>;
  /** Failures of the client to read what it got (not an API error). */
  unreadable: string[];
  /** Errors the client saw (HTTP errors, error events). */
  visibleErrors: string[];
  faults: Record<string, number>;
  durationMs: number;
}

/** Runs `requests` requests through a gateway in front of two healthy endpoints and a faulty one. */
export async function runChaos(options: {
  requests: number;
  concurrency: number;
  seed: number;
  env?: Record<string, string>;
}): Promise<ChaosResult> {
  const upstreams = await Promise.all([
    ChaosUpstream.start('flaky', 1 / 3, options.seed + 1),
    ChaosUpstream.start('good-a', 0, options.seed + 2),
    ChaosUpstream.start('good-b', 0, options.seed + 3),
  ]);
  let gw: TestGateway | undefined;
  try {
    gw = await startGateway({
      endpoints: upstreams.map((u) => ({
        url: u.url,
        name: u.name,
        apiKey: `key-${u.name}`,
        // The faulty one takes two thirds of the first attempts.
        weight: u.name === 'flaky' ? 4 : 1,
        models: ['chaos-model'],
      })),
      env: { LOG_LEVEL: 'silent', FIRST_BYTE_TIMEOUT_MS: '500', IDLE_TIMEOUT_MS: '300', ...options.env },
      random: seededRandom(options.seed + 4),
    });
    // Keep the faulty endpoint in the pool: ejection would hide its faults from the run.
    const current = gw.gateway.config.current;
    gw.gateway.reload({
      ...current,
      health: {
        ...current.health,
        ejection: {
          ...current.health.ejection,
          consecutiveFailures: 1_000_000,
          failureRatio: 1,
          minRequests: 20,
        },
      },
    });
    const client = new OpenAI({
      baseURL: `${gw.url}/v1`,
      apiKey: CLIENT_KEY,
      maxRetries: 0,
      timeout: 30_000,
    });
    const junk = Object.fromEntries(Array.from({ length: 990 }, (_, i) => [`x-junk-${i}`, 'j']));
    const result: ChaosResult = {
      requests: options.requests,
      streams: 0,
      whole: 0,
      corrupted: [],
      unreadable: [],
      visibleErrors: [],
      faults: {},
      durationMs: 0,
    };
    const started = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < options.requests) {
        const i = next++;
        const prompt = `q${i}`;
        const random = seededRandom(options.seed * 100_003 + i);
        const stream = random() < 0.7;
        const headers = random() < 0.1 ? junk : undefined;
        if (stream) result.streams++;
        const messages = [{ role: 'user' as const, content: prompt }];
        let text = '';
        try {
          if (stream) {
            const chunks = await client.chat.completions.create(
              { model: 'chaos-model', messages, stream: true },
              { headers },
            );
            for await (const chunk of chunks) text += chunk.choices[0]?.delta.content ?? '';
          } else {
            const answer = await client.chat.completions.create(
              { model: 'chaos-model', messages },
              { headers },
            );
            text = answer.choices[0]?.message.content ?? '';
          }
        } catch (err) {
          if (err instanceof APIError) result.visibleErrors.push(`${prompt}: ${err.message}`);
          else result.unreadable.push(`${prompt}: ${String(err)}`);
          continue;
        }
        if (text === chaosAnswer(prompt)) result.whole++;
        else result.corrupted.push({ prompt, got: text });
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    result.durationMs = Math.round(performance.now() - started);
    result.faults = Object.fromEntries(upstreams[0].faults);
    return result;
  } finally {
    await gw?.close();
    await Promise.all(upstreams.map((u) => u.stop()));
  }
}
