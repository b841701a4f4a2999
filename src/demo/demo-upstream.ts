import { ModelServer, type Behavior, type ChatRequest } from './model-server.js';

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
  private constructor(
    private readonly server: ModelServer,
    readonly options: DemoUpstreamOptions,
  ) {}

  static async start(options: DemoUpstreamOptions): Promise<DemoUpstream> {
    const random = options.random ?? Math.random;
    const server = await ModelServer.start({
      name: options.name,
      models: options.models,
      respond: (request) => respond(request, options, random),
    });
    return new DemoUpstream(server, options);
  }

  get url(): string {
    return this.server.url;
  }

  stop(): Promise<void> {
    return this.server.stop();
  }
}

/** A demo answer, paced like tokens from a GPU, failing now and then if the server is a flaky one. */
function respond(request: ChatRequest, options: DemoUpstreamOptions, random: () => number): Behavior {
  const { json, model } = request;
  if (!options.models.includes(model)) {
    return {
      type: 'status',
      status: 404,
      body: {
        error: {
          message: `The model '${model}' does not exist`,
          type: 'not_found_error',
          code: 'model_not_found',
        },
      },
    };
  }
  const failures = options.failures;
  if (failures && random() < failures.unavailable) {
    return {
      type: 'status',
      status: 503,
      body: { error: { message: `${options.name} is overloaded`, type: 'server_error' } },
    };
  }
  if (failures && random() < failures.reset) return { type: 'reset' };
  const messages = (Array.isArray(json?.messages) ? json.messages : []) as Message[];
  // The whole answer: the server sends the rest of it when asked to continue a final assistant message.
  const continuing = json?.continue_final_message === true && messages.at(-1)?.role === 'assistant';
  const text = demoAnswer(continuing ? messages.slice(0, -1) : messages);
  const words = text.split(/(?<= )/).length;
  const dies = request.stream && failures !== undefined && random() < failures.midStream;
  return {
    type: 'answer',
    text,
    firstTokenMs: options.firstTokenMs,
    tokenMs: options.tokenMs,
    dieAfterWords: dies ? Math.floor(words / 2) : undefined,
  };
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
