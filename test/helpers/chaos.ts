import OpenAI, { APIError } from 'openai';
import { ModelServer, streamEvents, type Behavior, type ChatRequest } from '../../src/demo/model-server.js';
import { CLIENT_KEY, seededRandom, startGateway, type TestGateway } from './start-gateway.js';

/**
 * The chaos run of issue 9: three endpoints, one of which fails a third of the time with every fault
 * a model server on a cheap lease shows (a TCP cut at any byte, inside a multi-byte character too; a
 * run of bytes without a line break; a break right after the role chunk; an in-band error event, before
 * or after the answer started, with or without [DONE]; a stall; a close without [DONE]; 503 and 429; a
 * reset or a hang before the headers; an empty answer; a garbled or error-object JSON answer), while
 * the openai SDK sends requests, some with 600 junk headers. Every fault is repairable (two
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

/**
 * An OpenAI-compatible server (the shared simulated one) that answers every prompt with chaosAnswer(),
 * continues a final assistant message as vLLM does, and, with `faultRate` > 0, fails that share of its
 * requests with a fault drawn from a seeded generator.
 */
export class ChaosUpstream {
  readonly faults = new Map<Fault, number>();
  /** How often each prompt came: a request's draws depend on it, not on the order requests arrive in. */
  private readonly seen = new Map<string, number>();
  private server!: ModelServer;

  private constructor(
    readonly name: string,
    private readonly faultRate: number,
    private readonly seed: number,
  ) {}

  static async start(name: string, faultRate: number, seed: number): Promise<ChaosUpstream> {
    const upstream = new ChaosUpstream(name, faultRate, seed);
    upstream.server = await ModelServer.start({
      name,
      models: ['chaos-model'],
      // As a real server: a key it cannot see is a 401 (what junk headers in front of it would cause).
      requireKey: `key-${name}`,
      maxHeadersCount: 500,
      respond: (request) => upstream.respond(request),
    });
    return upstream;
  }

  get url(): string {
    return this.server.url;
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  private respond({ json, model, stream }: ChatRequest): Behavior {
    const messages = (Array.isArray(json?.messages) ? json.messages : []) as Array<{
      role?: string;
      content?: unknown;
    }>;
    const last = messages.at(-1);
    const continuing = json?.continue_final_message === true && last?.role === 'assistant';
    const asked = (continuing ? messages.at(-2) : last)?.content;
    const prompt = typeof asked === 'string' ? asked : '';
    const answer = chaosAnswer(prompt);
    const nth = this.seen.get(prompt) ?? 0;
    this.seen.set(prompt, nth + 1);
    const random = seededRandom(this.seed + hash(prompt) * 31 + nth * 7919);
    const fault = random() < this.faultRate ? pick(stream, random) : undefined;
    if (!fault) return { type: 'answer', text: answer };
    this.faults.set(fault, (this.faults.get(fault) ?? 0) + 1);
    // What this request would send: the rest of the answer when it continues one.
    const prefix = continuing && typeof last?.content === 'string' ? last.content : '';
    const text = answer.startsWith(prefix) ? answer.slice(prefix.length) : answer;
    return faultBehavior(fault, model, text, random);
  }
}

function pick(stream: boolean, random: () => number): Fault {
  const pool: readonly Fault[] = stream ? [...STREAM_FAULTS, ...ANY_FAULTS] : [...JSON_FAULTS, ...ANY_FAULTS];
  return pool[Math.floor(random() * pool.length)]!;
}

const ERROR_EVENT = JSON.stringify({
  error: { message: 'CUDA error', type: 'InternalServerError', code: 500 },
});

function faultBehavior(fault: Fault, model: string, text: string, random: () => number): Behavior {
  const events = streamEvents(model, text);
  const [role, ...rest] = events;
  const words = rest.slice(0, -1);
  const some = [role!, ...words.slice(0, Math.floor(random() * words.length))];
  const raw = (payloads: string[]) => payloads.map((p) => `data: ${p}\n\n`).join('');
  switch (fault) {
    case 'status-503':
      return {
        type: 'status',
        status: 503,
        body: { error: { message: 'overloaded' } },
        headers: { 'retry-after': '1' },
      };
    case 'status-429':
      return {
        type: 'status',
        status: 429,
        body: { error: { message: 'slow down' } },
        headers: { 'retry-after-ms': '50' },
      };
    case 'reset':
      return { type: 'reset' };
    case 'hang':
      return { type: 'hang' };
    case 'empty':
      return { type: 'empty' };
    case 'garbled-json':
      return {
        type: 'custom',
        handle: (_req, res) =>
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"x", this is not json }'),
      };
    case 'error-object':
      return { type: 'json', body: { error: { message: 'engine died', type: 'server_error' } } };
    case 'cut': {
      const all = Buffer.from(`${raw(events)}data: [DONE]\n\n`);
      return { type: 'cut', bytes: all, at: 1 + Math.floor(random() * (all.length - 2)) };
    }
    case 'no-line-break':
      return {
        type: 'raw-sse',
        chunks: [raw(some), `data: {"x":"${'x'.repeat(1100 * 1024)}`],
        then: 'reset',
      };
    case 'role-then-break':
      return { type: 'sse', events: [role!], then: 'reset' };
    case 'error-event-then-done':
      return { type: 'sse', events: [...some, ERROR_EVENT], then: 'done' };
    case 'error-event-then-close':
      return { type: 'sse', events: [...some, ERROR_EVENT], then: 'end-without-done' };
    case 'error-event-first':
      return { type: 'sse', events: [ERROR_EVENT], then: 'done' };
    case 'stall':
      return { type: 'sse', events: some, then: 'hang' };
    case 'finish-then-close':
      return { type: 'sse', events, then: 'reset' };
    case 'truncated':
      return { type: 'sse', events: some, then: 'end-without-done' };
    case 'tiny-chunks': {
      // Not a fault: a whole answer in 1 to 7 byte pieces, characters cut across them.
      const all = Buffer.from(`${raw(events)}data: [DONE]\n\n`);
      const chunks: Buffer[] = [];
      for (let at = 0; at < all.length;) {
        const n = 1 + Math.floor(random() * 7);
        chunks.push(all.subarray(at, at + n));
        at += n;
      }
      return { type: 'raw-sse', chunks };
    }
  }
}

function hash(text: string): number {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, 31) + text.charCodeAt(i)) >>> 0;
  return h;
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
    const junk = Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`x-j${i}`, 'j']));
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
