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
const INITIAL_BYTES = 4096;

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
  /**
   * The raw bytes not parsed yet, copied into one buffer: holding every chunk instead would keep a
   * buffer object (and its memory) per chunk alive for the whole stream.
   */
  private pending: Buffer | undefined;
  private pendingBytes = 0;
  /** Created only when the stream is analysed (after a break). */
  private parser: SseParser | undefined;

  feed(chunk: Buffer): void {
    const needed = this.pendingBytes + chunk.length;
    if (!this.pending || needed > this.pending.length) {
      const grown = Buffer.allocUnsafe(Math.max(INITIAL_BYTES, 2 ** Math.ceil(Math.log2(needed))));
      this.pending?.copy(grown, 0, 0, this.pendingBytes);
      this.pending = grown;
    }
    chunk.copy(this.pending, this.pendingBytes);
    this.pendingBytes = needed;
    // A long answer is parsed as it goes, so that memory holds its text rather than all its events.
    if (this.pendingBytes > MAX_PENDING_BYTES) this.parsePending();
  }

  /** Text was sent, and the rest of a plain text answer is missing. */
  get continuable(): boolean {
    this.parsePending();
    return this.text.length > 0 && !this.toolCalls && !this.multipleChoices && !this.finished;
  }

  private parsePending(): void {
    const bytes = this.pending?.subarray(0, this.pendingBytes);
    this.pendingBytes = 0;
    if (!bytes || bytes.length === 0) return;
    this.parser ??= new SseParser();
    // The parser keeps what it needs (an unfinished event) as text, so the buffer can be reused.
    for (const payload of this.parser.feed(bytes)) this.apply(payload);
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
