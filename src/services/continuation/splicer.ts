import { SSE_DONE, sseData } from '../core/sse.js';
import { inBandError } from '../streaming/sse-framing.js';
import type { Chunk, Continuation, StreamTranscript } from '../streaming/transcript.js';

interface SpliceChunk extends Chunk {
  usage?: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number } | null;
}

/**
 * Rewrites continuation events so that they read as the rest of the first stream. A `restart` (nothing
 * but the role had reached the client) passes every event on without the role deltas already sent; a
 * `continue` drops the text the client already has and splices the rest onto it.
 */
export class Splicer {
  private readonly priorTokens: number;

  constructor(
    private readonly transcript: StreamTranscript,
    private readonly mode: Continuation,
    /** Set when the gateway asked for usage: the usage-only chunk goes here instead of to the client. */
    private readonly takeUsage?: (usage: unknown) => void,
  ) {
    this.priorTokens = transcript.contentChunks;
  }

  /**
   * SSE text to send for one upstream payload; `done` after [DONE]. Throws on an upstream error event
   * or an event that is not JSON: nothing of it may reach the client.
   */
  payload(data: string): { out: string; done: boolean } {
    if (data === '[DONE]') return { out: SSE_DONE, done: true };
    let chunk: SpliceChunk;
    try {
      chunk = JSON.parse(data) as SpliceChunk;
    } catch {
      throw new Error('the continuation sent an event that is not JSON');
    }
    const error = inBandError(chunk);
    if (error !== undefined) throw new Error(error);
    if (chunk === null || typeof chunk !== 'object' || Array.isArray(chunk))
      throw new Error('the continuation sent an event that is not a chunk');
    const t = this.transcript;
    const out: SpliceChunk = {
      ...chunk,
      id: t.id ?? chunk.id,
      created: t.created ?? chunk.created,
      model: t.model ?? chunk.model,
    };
    const spliced = this.mode === 'restart' ? this.restarted(out) : this.continued(chunk, out);
    if (this.takeUsage && out.usage && Array.isArray(chunk.choices) && chunk.choices.length === 0) {
      this.takeUsage(out.usage);
      return { out: '', done: false };
    }
    return spliced;
  }

  /** A restarted stream's event, less the role deltas the client already has. */
  private restarted(out: SpliceChunk): { out: string; done: boolean } {
    const roles = this.transcript.roles;
    let meaningful = out.usage !== undefined && out.usage !== null;
    out.choices = (out.choices ?? []).map((choice) => {
      const delta = { ...choice.delta };
      if (roles.includes(choice.index ?? 0)) {
        delete delta.role;
        if (delta.content === '') delete delta.content;
      }
      if (Object.keys(delta).length > 0 || choice.finish_reason || choice.logprobs) meaningful = true;
      return { ...choice, delta };
    });
    if (!meaningful) return { out: '', done: false };
    this.transcript.note(out);
    return { out: sseData(out), done: false };
  }

  private continued(chunk: SpliceChunk, out: SpliceChunk): { out: string; done: boolean } {
    let text = '';
    let finish = false;
    out.choices = (chunk.choices ?? []).map((choice) => {
      const delta = { ...choice.delta };
      delete delta.role;
      if (typeof delta.content === 'string') {
        text += delta.content;
        delete delta.content;
      }
      if (choice.finish_reason) finish = true;
      return { ...choice, delta };
    });
    if (chunk.usage) {
      // The continuation's prompt included the partial answer: those tokens were generated, not read.
      const prompt = Math.max(0, (chunk.usage.prompt_tokens ?? 0) - this.priorTokens);
      const completion = (chunk.usage.completion_tokens ?? 0) + this.priorTokens;
      out.usage = {
        ...chunk.usage,
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
      };
    }
    // The text goes on exactly as the server continues it. It is not compared with the prefix: an
    // answer that repeats itself (lists, tables, code) would lose a piece wherever a continuation
    // starts like the text before it, and every supported server continues without echoing.
    const content = this.record(text);
    const choice = out.choices[0];
    if (choice && content) choice.delta = { ...choice.delta, content };
    const meaningful =
      content !== '' ||
      finish ||
      (out.usage !== undefined && out.usage !== null) ||
      (choice?.delta && Object.keys(choice.delta).length > 0);
    return { out: meaningful ? sseData(out) : '', done: false };
  }

  private record(text: string): string {
    this.transcript.appendText(text);
    return text;
  }
}
