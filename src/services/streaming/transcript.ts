import { SseParser } from './sse-parser.js';

export interface ChunkChoice {
  index?: number;
  delta?: Record<string, unknown> | null;
  finish_reason?: string | null;
  logprobs?: unknown;
}

export interface Chunk {
  id?: string;
  created?: number;
  model?: string;
  choices?: ChunkChoice[];
}

/**
 * What repairing a broken stream takes: `complete` when every choice already had its finish_reason
 * (only the [DONE] line is missing), `restart` when nothing but the role reached the client (the
 * request is simply sent again, its role deltas dropped), `continue` when plain text did (the text is
 * sent as an assistant prefix to complete).
 */
export type Continuation = 'complete' | 'restart' | 'continue';

/**
 * The bytes all streams' transcripts may keep together (CONTINUATION_BUDGET_BYTES). A transcript that
 * cannot get more gives up its stream's continuation, so that slow readers of long answers cannot
 * fill the heap.
 */
export class TranscriptBudget {
  used = 0;

  constructor(public limitBytes: number) {}

  take(bytes: number): boolean {
    if (this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

export interface TranscriptOptions {
  /** Keep the answer's text, so that a stream broken mid-answer can be continued (CONTINUATION). */
  keepText: boolean;
  /** One stream's transcript at most (CONTINUATION_MAX_BYTES). */
  maxBytes: number;
  budget: TranscriptBudget;
}

/** Raw event bytes kept unparsed at most (a short answer never gets parsed at all). */
const MAX_PENDING_BYTES = 64 * 1024;
const INITIAL_BYTES = 4096;

/**
 * What a relayed stream has said to the client so far (the relay feeds it whole events only): whether
 * anything beyond the role reached the client, and, when continuation is on, its text and identity (id,
 * created, model) and whether that text can be continued (text only, one choice, not finished).
 *
 * With text kept, the relay only copies the raw events (no parsing on the hot path); they are parsed
 * when the stream breaks, or every 64 KiB of a long answer to bound its memory. Without, the first
 * events are parsed as they come, until something beyond the role has been said.
 */
export class StreamTranscript {
  text = '';
  /** Content deltas seen: close to the number of generated tokens. */
  contentChunks = 0;
  id: string | undefined;
  created: number | undefined;
  model: string | undefined;
  /** Choices whose role delta reached the client. */
  readonly roles: number[] = [];
  /** Choices seen, and those that had their finish_reason. */
  private readonly choices: number[] = [];
  private readonly finishedChoices: number[] = [];
  /** Without text kept: the last events, looked at after a break for a finish_reason. */
  private lastEvents: Buffer | undefined;
  /** Something other than role deltas reached the client: content, tool calls, reasoning… */
  private said: 'nothing' | 'text' | 'other' = 'nothing';
  private multipleChoices = false;
  /** Over one of its bounds: the text is dropped and the stream cannot be continued any more. */
  private overflowed = false;
  /**
   * The raw bytes not parsed yet, copied into one buffer: holding every chunk instead would keep a
   * buffer object (and its memory) per chunk alive for the whole stream.
   */
  private pending: Buffer | undefined;
  private pendingBytes = 0;
  /** Bytes taken from the budget. */
  private reserved = 0;
  /** Created only when the stream is analysed. */
  private parser: SseParser | undefined;

  constructor(private readonly options: TranscriptOptions) {}

  /** Whole events that reached the client. */
  feed(events: Buffer): void {
    if (!this.options.keepText) {
      // Only whether something beyond the role was said matters; that is known after an event or two.
      if (this.said === 'nothing') this.parse(events);
      else this.lastEvents = events;
      return;
    }
    if (this.overflowed) return;
    const needed = this.pendingBytes + events.length;
    if (!this.pending || needed > this.pending.length) {
      const grown = Buffer.allocUnsafe(Math.max(INITIAL_BYTES, 2 ** Math.ceil(Math.log2(needed))));
      if (!this.account(grown.length - (this.pending?.length ?? 0))) return;
      this.pending?.copy(grown, 0, 0, this.pendingBytes);
      this.pending = grown;
    }
    events.copy(this.pending, this.pendingBytes);
    this.pendingBytes = needed;
    // A long answer is parsed as it goes, so that memory holds its text rather than all its events.
    if (this.pendingBytes > MAX_PENDING_BYTES) this.parsePending();
  }

  /** How the stream can be continued after a break, if it can. */
  get continuation(): Continuation | undefined {
    this.parsePending();
    if (this.lastEvents) {
      this.parse(this.lastEvents);
      this.lastEvents = undefined;
    }
    if (this.finished) return 'complete';
    if (this.said === 'nothing') return 'restart';
    const { keepText } = this.options;
    if (!keepText || this.overflowed || this.said !== 'text' || this.multipleChoices) return undefined;
    return 'continue';
  }

  /** Text of a continuation that reached the client. */
  appendText(text: string): void {
    if (this.overflowed || text === '') return;
    if (!this.account(text.length)) return;
    this.text += text;
    this.contentChunks++;
    this.said = 'text';
  }

  /** A chunk that reached the client, as parsed (the relay's, or a restarted stream's). */
  note(chunk: Chunk): void {
    if (chunk === null || typeof chunk !== 'object') return;
    this.id ??= chunk.id;
    this.created ??= chunk.created;
    this.model ??= chunk.model;
    if (!Array.isArray(chunk.choices)) return;
    for (const choice of chunk.choices) {
      const index = choice.index ?? 0;
      if (index !== 0) this.multipleChoices = true;
      if (!this.choices.includes(index)) this.choices.push(index);
      if (choice.finish_reason && !this.finishedChoices.includes(index)) this.finishedChoices.push(index);
      if (choice.logprobs !== undefined && choice.logprobs !== null) this.sawOther();
      // A text completion's chunk (`/v1/completions`): text the client has, which no chat continues.
      const text = (choice as { text?: unknown }).text;
      if (typeof text === 'string' && text !== '') this.sawOther();
      const delta = choice.delta;
      if (!delta) continue;
      for (const key in delta) {
        const value = delta[key];
        if (key === 'role') {
          if (!this.roles.includes(index)) this.roles.push(index);
        } else if (key === 'content' && typeof value === 'string') {
          if (value !== '' && this.keepsText()) this.appendText(value);
          else if (value !== '') this.said = this.said === 'other' ? 'other' : 'text';
        } else if (value !== null && value !== undefined && value !== '') {
          // Tool calls, reasoning, a refusal, audio: nothing a text prefix can continue.
          this.sawOther();
        }
      }
    }
  }

  /** Gives back what the transcript took from the budget; the request is over. */
  dispose(): void {
    this.options.budget.give(this.reserved);
    this.reserved = 0;
    this.pending = undefined;
    this.pendingBytes = 0;
    this.parser = undefined;
    this.lastEvents = undefined;
    this.text = '';
  }

  /** Every choice seen has had its finish_reason. */
  private get finished(): boolean {
    return this.choices.length > 0 && this.finishedChoices.length === this.choices.length;
  }

  private keepsText(): boolean {
    return this.options.keepText && !this.overflowed;
  }

  private sawOther(): void {
    this.said = 'other';
  }

  /** Takes `bytes` more for this transcript; past a bound, the transcript gives up its text. */
  private account(bytes: number): boolean {
    const { maxBytes, budget } = this.options;
    if (this.reserved + bytes <= maxBytes && budget.take(bytes)) {
      this.reserved += bytes;
      return true;
    }
    this.overflowed = true;
    // What the dropped bytes said is not known any more: not a stream to restart either.
    this.said = 'other';
    budget.give(this.reserved);
    this.reserved = 0;
    this.pending = undefined;
    this.pendingBytes = 0;
    this.text = '';
    return false;
  }

  private parsePending(): void {
    const bytes = this.pending?.subarray(0, this.pendingBytes);
    this.pendingBytes = 0;
    if (bytes && bytes.length > 0) this.parse(bytes);
  }

  private parse(bytes: Buffer): void {
    this.parser ??= new SseParser();
    // The parser keeps what it needs (an unfinished event) as text, so the buffer can be reused.
    for (const payload of this.parser.feed(bytes)) {
      if (payload === '[DONE]') continue;
      try {
        this.note(JSON.parse(payload) as Chunk);
      } catch {
        // Not JSON: the client could not read it either; nothing to continue from.
        this.sawOther();
      }
    }
  }
}
