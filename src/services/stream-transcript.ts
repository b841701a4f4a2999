import { SseParser } from './sse-parser.js';

interface ChunkChoice {
  index?: number;
  delta?: { role?: string; content?: string | null; tool_calls?: unknown; function_call?: unknown };
  finish_reason?: string | null;
}

interface Chunk {
  id?: string;
  created?: number;
  model?: string;
  choices?: ChunkChoice[];
}

/** Raw event bytes kept unparsed at most (a short answer never gets parsed at all). */
const MAX_PENDING_BYTES = 64 * 1024;

/**
 * What a relayed stream has said so far, for mid-stream continuation: its text, its identity (id,
 * created, model), and whether it can be continued at all (text only, one choice, not finished).
 *
 * The relay only keeps the raw chunks (no parsing on the hot path); they are parsed when the stream
 * breaks and a continuation is considered, or every 64 KiB of a long answer to bound its memory.
 */
export class StreamTranscript {
  text = '';
  /** Content deltas seen: close to the number of generated tokens. */
  contentChunks = 0;
  id: string | undefined;
  created: number | undefined;
  model: string | undefined;
  private toolCalls = false;
  private multipleChoices = false;
  private finished = false;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Created only when the stream is analysed (after a break). */
  private parser: SseParser | undefined;

  feed(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    // A long answer is parsed as it goes, so that memory holds its text rather than all its events.
    if (this.pendingBytes > MAX_PENDING_BYTES) this.parsePending();
  }

  /** Text was sent, and the rest of a plain text answer is missing. */
  get continuable(): boolean {
    this.parsePending();
    return this.text.length > 0 && !this.toolCalls && !this.multipleChoices && !this.finished;
  }

  private parsePending(): void {
    const chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.parser ??= new SseParser();
    for (const chunk of chunks) {
      for (const payload of this.parser.feed(chunk)) this.apply(payload);
    }
  }

  private apply(payload: string): void {
    if (payload === '[DONE]') return;
    let parsed: Chunk;
    try {
      parsed = JSON.parse(payload) as Chunk;
    } catch {
      return;
    }
    this.id ??= parsed.id;
    this.created ??= parsed.created;
    this.model ??= parsed.model;
    for (const choice of parsed.choices ?? []) {
      if ((choice.index ?? 0) !== 0) this.multipleChoices = true;
      const delta = choice.delta;
      if (delta?.tool_calls !== undefined || delta?.function_call !== undefined) this.toolCalls = true;
      if (typeof delta?.content === 'string' && delta.content !== '') {
        this.text += delta.content;
        this.contentChunks++;
      }
      if (choice.finish_reason) this.finished = true;
    }
  }
}
