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
