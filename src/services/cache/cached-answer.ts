import { SSE_DONE, sseData } from '../core/sse.js';

/** Token counts as OpenAI reports them. */
export interface AnswerUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/**
 * A complete successful answer as the cache keeps it: in the mode it was produced in (a JSON
 * completion, or a stream's data events without the usage-only chunk and `[DONE]`), with the usage the
 * upstream reported when it did.
 */
export interface CachedAnswer {
  mode: 'json' | 'sse';
  body: Buffer;
  usage: AnswerUsage | undefined;
}

const FORMAT = 1;
const NEWLINE = 0x0a;

/** An entry's bytes: one line of JSON (format, mode, usage), then the body as it is. */
export function encodeAnswer(answer: CachedAnswer): Buffer {
  const head = `${JSON.stringify({ v: FORMAT, mode: answer.mode, usage: answer.usage ?? null })}\n`;
  const headBytes = Buffer.byteLength(head);
  // A memory of its own: a small Buffer from Node's pool is a view of an 8 KiB slab, which an entry
  // kept for an hour would hold on to whole (2 to 3 times its size for answers of a few KiB).
  const entry = Buffer.allocUnsafeSlow(headBytes + answer.body.length);
  entry.write(head, 0, 'utf8');
  answer.body.copy(entry, headBytes);
  return entry;
}

/** An entry read back; undefined for bytes that are no entry of this format (another version's). */
export function decodeAnswer(entry: Buffer): CachedAnswer | undefined {
  const end = entry.indexOf(NEWLINE);
  if (end < 0) return undefined;
  try {
    const head = JSON.parse(entry.subarray(0, end).toString('utf8')) as {
      v?: unknown;
      mode?: unknown;
      usage?: AnswerUsage | null;
    };
    if (head.v !== FORMAT || (head.mode !== 'json' && head.mode !== 'sse')) return undefined;
    return { mode: head.mode, body: entry.subarray(end + 1), usage: head.usage ?? undefined };
  } catch {
    return undefined;
  }
}

interface Choice {
  index?: number;
  message?: Record<string, unknown>;
  delta?: Record<string, unknown>;
  finish_reason?: unknown;
  logprobs?: { content?: unknown[] | null } | null;
}

interface Completion {
  id?: unknown;
  object?: unknown;
  created?: unknown;
  model?: unknown;
  system_fingerprint?: unknown;
  choices?: Choice[];
  usage?: AnswerUsage | null;
}

/**
 * What the client received, as an entry: a JSON completion with choices, or the data events of a
 * stream that ended with `[DONE]` after a finish reason. Anything else (an error event, a cut stream,
 * a body that is no completion) is not cached. Events are read as text; only those that may be a
 * usage-only chunk or an error are parsed (a stream has hundreds of events).
 */
export function answerOf(
  mode: 'json' | 'sse',
  received: Buffer,
  usage: AnswerUsage | undefined,
): CachedAnswer | undefined {
  if (mode === 'json') {
    // The relay checked it is a JSON object and no error; a completion has choices.
    if (received.indexOf(CHOICES) < 0) return undefined;
    const text = received.toString('latin1');
    if (EMPTY_CHOICES.test(text)) return undefined;
    return { mode, body: received, usage };
  }
  const events = dataEvents(received.toString('utf8'));
  if (events.at(-1) !== '[DONE]') return undefined;
  let out = '';
  let finished = false;
  let seenUsage: AnswerUsage | undefined;
  for (let i = 0; i < events.length - 1; i++) {
    const payload = events[i]!;
    if (!payload.includes('"choices"')) return undefined;
    if (EMPTY_CHOICES.test(payload) || payload.includes('"error"')) {
      const chunk = parseObject(payload) as (Completion & { error?: unknown }) | undefined;
      if (!chunk || (chunk.error !== undefined && chunk.error !== null) || !Array.isArray(chunk.choices))
        return undefined;
      // The usage-only chunk is given to whoever asks for it at replay, not to every hit.
      if (chunk.choices.length === 0) {
        seenUsage = validUsage(chunk.usage) ?? seenUsage;
        continue;
      }
    }
    if (!finished && FINISHED.test(payload)) finished = true;
    out += `data: ${payload}\n\n`;
  }
  if (!finished) return undefined;
  return { mode, body: Buffer.from(out, 'utf8'), usage: seenUsage ?? usage };
}

const CHOICES = Buffer.from('"choices"');
const EMPTY_CHOICES = /"choices"\s*:\s*\[\s*\]/;
/** A finish reason that is not null. */
const FINISHED = /"finish_reason"\s*:\s*"/;

/**
 * An entry as an answer in the mode asked: as stored when the modes agree; a JSON completion sent as
 * a stream (one content chunk, one finish chunk), or a stream's chunks assembled into one completion.
 * A stream gets its usage chunk when the client asked for it (`stream_options.include_usage`).
 */
export function replay(
  answer: CachedAnswer,
  stream: boolean,
  includeUsage: boolean,
): { contentType: string; body: Buffer | string } {
  if (!stream) {
    if (answer.mode === 'json') return { contentType: 'application/json', body: answer.body };
    return {
      contentType: 'application/json',
      body: JSON.stringify(assemble(dataEvents(answer.body.toString('utf8')), answer.usage)),
    };
  }
  const contentType = 'text/event-stream; charset=utf-8';
  if (answer.mode === 'sse') {
    const usage =
      includeUsage && answer.usage
        ? sseData({ ...headOf(firstChunk(answer.body)), choices: [], usage: answer.usage })
        : '';
    return { contentType, body: answer.body.toString('utf8') + usage + SSE_DONE };
  }
  const completion = JSON.parse(answer.body.toString('utf8')) as Completion;
  return { contentType, body: chunksOf(completion, includeUsage) };
}

/** The fields every chunk of a completion repeats. */
function headOf(c: Completion): Record<string, unknown> {
  const head: Record<string, unknown> = {
    id: c.id,
    object: 'chat.completion.chunk',
    created: c.created,
    model: c.model,
  };
  if (c.system_fingerprint !== undefined) head.system_fingerprint = c.system_fingerprint;
  return head;
}

function firstChunk(body: Buffer): Completion {
  const end = body.indexOf('\n\n');
  const line = body.subarray(0, end < 0 ? body.length : end).toString('utf8');
  return (parseObject(line.replace(/^data:\s?/, '')) as Completion | undefined) ?? {};
}

/** A JSON completion as a stream: each choice's message in one delta, then the finish reasons. */
function chunksOf(c: Completion, includeUsage: boolean): string {
  const head = headOf(c);
  const choices = c.choices ?? [];
  let out = sseData({
    ...head,
    choices: choices.map((choice, i) => {
      const message = choice.message ?? {};
      const delta: Record<string, unknown> = { ...message };
      if (Array.isArray(message.tool_calls))
        delta.tool_calls = (message.tool_calls as Array<Record<string, unknown>>).map((call, index) => ({
          index,
          ...call,
        }));
      const out: Record<string, unknown> = { index: choice.index ?? i, delta, finish_reason: null };
      if (choice.logprobs) out.logprobs = choice.logprobs;
      return out;
    }),
  });
  out += sseData({
    ...head,
    choices: choices.map((choice, i) => ({
      index: choice.index ?? i,
      delta: {},
      finish_reason: choice.finish_reason ?? 'stop',
    })),
  });
  const usage = validUsage(c.usage);
  if (includeUsage && usage) out += sseData({ ...head, choices: [], usage });
  return out + SSE_DONE;
}

interface Assembled {
  role: unknown;
  content: string | undefined;
  reasoning: string | undefined;
  refusal: string | undefined;
  toolCalls: Map<number, { id?: unknown; type?: unknown; function: { name: string; arguments: string } }>;
  finishReason: unknown;
  logprobs: unknown[] | undefined;
}

/** A stream's chunks as the one completion they make up. */
function assemble(events: readonly string[], usage: AnswerUsage | undefined): Completion {
  const byIndex = new Map<number, Assembled>();
  let first: Completion | undefined;
  for (const payload of events) {
    if (payload === '[DONE]') continue;
    const chunk = parseObject(payload) as Completion | undefined;
    if (!chunk || !Array.isArray(chunk.choices)) continue;
    first ??= chunk;
    for (const choice of chunk.choices) {
      const index = typeof choice.index === 'number' ? choice.index : 0;
      let a = byIndex.get(index);
      if (!a) {
        a = {
          role: undefined,
          content: undefined,
          reasoning: undefined,
          refusal: undefined,
          toolCalls: new Map(),
          finishReason: null,
          logprobs: undefined,
        };
        byIndex.set(index, a);
      }
      const delta = choice.delta ?? {};
      a.role ??= delta.role;
      if (typeof delta.content === 'string') a.content = (a.content ?? '') + delta.content;
      const reasoning = delta.reasoning_content ?? delta.reasoning;
      if (typeof reasoning === 'string') a.reasoning = (a.reasoning ?? '') + reasoning;
      if (typeof delta.refusal === 'string') a.refusal = (a.refusal ?? '') + delta.refusal;
      if (Array.isArray(delta.tool_calls))
        for (const call of delta.tool_calls as Array<Record<string, unknown>>) {
          const at = typeof call.index === 'number' ? call.index : a.toolCalls.size;
          let tc = a.toolCalls.get(at);
          if (!tc) {
            tc = { function: { name: '', arguments: '' } };
            a.toolCalls.set(at, tc);
          }
          tc.id ??= call.id;
          tc.type ??= call.type;
          const fn = call.function as { name?: unknown; arguments?: unknown } | undefined;
          if (typeof fn?.name === 'string') tc.function.name += fn.name;
          if (typeof fn?.arguments === 'string') tc.function.arguments += fn.arguments;
        }
      if (choice.finish_reason !== null && choice.finish_reason !== undefined)
        a.finishReason = choice.finish_reason;
      if (Array.isArray(choice.logprobs?.content))
        a.logprobs = [...(a.logprobs ?? []), ...choice.logprobs.content];
    }
  }
  const choices = [...byIndex.entries()]
    .sort(([x], [y]) => x - y)
    .map(([index, a]) => {
      const message: Record<string, unknown> = { role: a.role ?? 'assistant', content: a.content ?? null };
      if (a.reasoning !== undefined) message.reasoning_content = a.reasoning;
      if (a.refusal !== undefined) message.refusal = a.refusal;
      if (a.toolCalls.size > 0)
        message.tool_calls = [...a.toolCalls.entries()]
          .sort(([x], [y]) => x - y)
          .map(([, tc]) => ({ id: tc.id, type: tc.type ?? 'function', function: tc.function }));
      const out: Record<string, unknown> = { index, message, finish_reason: a.finishReason };
      if (a.logprobs) out.logprobs = { content: a.logprobs };
      return out;
    });
  const completion: Record<string, unknown> = {
    id: first?.id,
    object: 'chat.completion',
    created: first?.created,
    model: first?.model,
  };
  if (first?.system_fingerprint !== undefined) completion.system_fingerprint = first.system_fingerprint;
  completion.choices = choices;
  if (usage) completion.usage = usage;
  return completion;
}

/**
 * The data of each event of a stream, in order; comments (heartbeats) and other fields left out.
 * Multi-line data is joined with newlines, as the SSE specification says.
 */
export function dataEvents(text: string): string[] {
  const out: string[] = [];
  for (const event of text.split(/\r?\n\r?\n/)) {
    let data: string | undefined;
    for (const line of event.split(/\r?\n/)) {
      if (!line.startsWith('data:')) continue;
      const value = line.charCodeAt(5) === 0x20 ? line.slice(6) : line.slice(5);
      data = data === undefined ? value : `${data}\n${value}`;
    }
    if (data !== undefined) out.push(data);
  }
  return out;
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function validUsage(usage: unknown): AnswerUsage | undefined {
  if (usage === null || typeof usage !== 'object') return undefined;
  const u = usage as Record<string, unknown>;
  if (typeof u.prompt_tokens !== 'number' || typeof u.completion_tokens !== 'number') return undefined;
  return {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: typeof u.total_tokens === 'number' ? u.total_tokens : u.prompt_tokens + u.completion_tokens,
  };
}
