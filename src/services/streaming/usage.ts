import type { RequestTrace } from '../core/request.js';

interface UsageFields {
  prompt_tokens?: unknown;
  completion_tokens?: unknown;
}

/** The token counts of an answer's `usage` object, noted on the request's trace. */
export function noteUsage(trace: RequestTrace, usage: unknown): void {
  if (usage === null || typeof usage !== 'object') return;
  const u = usage as UsageFields;
  if (typeof u.prompt_tokens === 'number') trace.promptTokens = u.prompt_tokens;
  if (typeof u.completion_tokens === 'number') trace.completionTokens = u.completion_tokens;
}

const USAGE = Buffer.from('"usage"');
const DATA = Buffer.from('data:');

/**
 * The last `usage` a stream's final events carry (the usage-only chunk of `stream_options.include_usage`,
 * or a server that reports usage on its last chunks), read once when the stream has ended: the relay
 * itself never parses events for it.
 */
export function noteStreamUsage(trace: RequestTrace, ...events: ReadonlyArray<Buffer | undefined>): void {
  for (const buf of events) {
    if (!buf) continue;
    const at = buf.lastIndexOf(USAGE);
    if (at < 0) continue;
    const start = buf.lastIndexOf(DATA, at);
    if (start < 0) continue;
    let end = buf.indexOf(10, at);
    if (end < 0) end = buf.length;
    try {
      const chunk = JSON.parse(buf.subarray(start + DATA.length, end).toString('utf8')) as {
        usage?: unknown;
      };
      if (chunk.usage !== null && typeof chunk.usage === 'object') {
        noteUsage(trace, chunk.usage);
        return;
      }
    } catch {
      // Not an event of ours to read (a "usage" inside some text): no usage, the reservation stands.
    }
  }
}

const EMPTY_CHOICES = /"choices"\s*:\s*\[\s*\]/;

/**
 * For a stream whose usage the gateway asked for (the client did not): the events without the
 * usage-only chunk (`"choices":[]` and a `usage`), and that usage. Other events are left byte for byte,
 * so the client receives exactly what it would have without the gateway's request. Events with choices
 * that also carry usage (servers that report it on every chunk) are left as they are.
 */
export function takeUsageChunks(events: Buffer, trace: RequestTrace): Buffer {
  if (events.indexOf(USAGE) < 0) return events;
  const text = events.toString('utf8');
  let out = '';
  let from = 0;
  let changed = false;
  while (from < text.length) {
    const end = text.indexOf('\n\n', from);
    const stop = end < 0 ? text.length : end + 2;
    const event = text.slice(from, stop);
    if (event.includes('"usage"') && EMPTY_CHOICES.test(event)) {
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      try {
        const chunk = JSON.parse(data) as { usage?: unknown; choices?: unknown };
        if (Array.isArray(chunk.choices) && chunk.choices.length === 0) {
          noteUsage(trace, chunk.usage);
          changed = true;
          from = stop;
          continue;
        }
      } catch {
        // Not a chunk we can read: relayed as it came.
      }
    }
    out += event;
    from = stop;
  }
  return changed ? Buffer.from(out, 'utf8') : events;
}

/** Counts the data events relayed (about one token each for vLLM and SGLang): an estimate's basis. */
export function countEvents(trace: RequestTrace, events: Buffer): void {
  let n = 0;
  for (let at = events.indexOf(DATA); at >= 0; at = events.indexOf(DATA, at + DATA.length)) n++;
  trace.streamEvents = (trace.streamEvents ?? 0) + n;
}

/** The characters of a JSON answer's messages (content and tool calls). */
export function answerChars(parsed: object): number {
  const choices = (parsed as { choices?: unknown }).choices;
  if (!Array.isArray(choices)) return 0;
  let chars = 0;
  for (const choice of choices) {
    const message = (choice as { message?: { content?: unknown; tool_calls?: unknown } } | null)?.message;
    if (typeof message?.content === 'string') chars += message.content.length;
    if (message?.tool_calls !== undefined) chars += JSON.stringify(message.tool_calls).length;
  }
  return chars;
}
