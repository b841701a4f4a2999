import { SseParser } from './sse-parser.js';

/**
 * Event framing for the stream relay. A TCP cut usually lands inside an event, not between two; bytes
 * relayed as they came would leave the client a partial `data: {…` line, and whatever the gateway wrote
 * next (a continuation, an error event) would be glued onto it. So the relay writes whole events only:
 * a chunk that ends on an event boundary (nearly all of them: servers write one event at a time) is
 * written as it came, without a copy; an unfinished trailing event is held back until its end arrives.
 *
 * An event ends with a blank line. Lines end with LF or CRLF (every OpenAI-compatible server uses one
 * of the two; a lone CR as a line end is not recognised, so such a stream would hit MAX_HELD_BYTES).
 */
const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);

/** An unfinished event longer than this is not an event the relay will wait for: the stream is broken. */
export const MAX_HELD_BYTES = 1024 * 1024;

/**
 * The index just after the last complete event in `buf[0, limit)`, or 0 when there is none. `buf` starts
 * at an event boundary.
 */
function lastEventEnd(buf: Buffer, limit = buf.length): number {
  // Nearly every chunk ends with "\n\n": no search.
  if (limit === buf.length && limit >= 2 && buf[limit - 1] === LF && buf[limit - 2] === LF) return limit;
  for (let lf = limit > 0 ? buf.lastIndexOf(LF, limit - 1) : -1; lf >= 0;) {
    // The line ended by this LF (or CRLF) is empty when a line end comes right before it.
    let last = lf - 1;
    if (last >= 0 && buf[last] === CR) last--;
    if (last < 0 || buf[last] === LF) return lf + 1;
    lf = buf.lastIndexOf(LF, last);
  }
  return 0;
}

/** The index just after the end of the event that contains `at` (the blank line after it), or -1. */
function eventEndAfter(buf: Buffer, at: number): number {
  for (let lf = buf.indexOf(LF, at); lf >= 0; lf = buf.indexOf(LF, lf + 1)) {
    const next = buf[lf + 1];
    if (next === LF) return lf + 2;
    if (next === CR && buf[lf + 2] === LF) return lf + 3;
  }
  return -1;
}

/**
 * Splits a relayed stream into whole events. `push` returns the whole events a chunk completes (the
 * chunk itself when it ends on a boundary and nothing was held), holding back an unfinished tail.
 */
export class SseFramer {
  private held: Buffer | undefined;

  /** Bytes of an unfinished event held back. */
  get heldBytes(): number {
    return this.held?.length ?? 0;
  }

  push(chunk: Buffer): Buffer {
    let data = chunk;
    if (this.held) {
      data = Buffer.concat([this.held, chunk]);
      this.held = undefined;
    }
    const end = lastEventEnd(data);
    if (end === data.length) return data;
    // A copy: a slice would keep the whole chunk (often a socket read of 64 KiB) alive.
    this.held = Buffer.from(data.subarray(end));
    return end === 0 ? EMPTY : data.subarray(0, end);
  }

  /**
   * The upstream ended. A held `data: [DONE]` line that lacks its blank line is completed (returned
   * with the line ends it missed); any other unfinished event is dropped. Undefined when nothing of
   * the [DONE] line kind was held.
   */
  end(): Buffer | undefined {
    const held = this.held;
    this.held = undefined;
    if (!held || doneLineAt(held) < 0) return undefined;
    const tail = held[held.length - 1] === LF ? '\n' : '\n\n';
    return Buffer.concat([held, Buffer.from(tail)]);
  }
}

const DONE = Buffer.from('[DONE]');

/**
 * Where the `data: [DONE]` line (also `data:[DONE]`, which some servers send) starts in whole events,
 * or -1. Only the line counts: an answer that merely mentions "[DONE]" inside its JSON does not end the
 * stream. One native search, from the end (the line is in the last event).
 */
export function doneLineAt(buf: Buffer): number {
  for (let at = buf.lastIndexOf(DONE); at >= 0; at = at > 0 ? buf.lastIndexOf(DONE, at - 1) : -1) {
    const start = doneLineStart(buf, at);
    if (start >= 0) return start;
  }
  return -1;
}

/** Where the line starts when `[DONE]` at `at` is a whole line `data: [DONE]` or `data:[DONE]`, else -1. */
function doneLineStart(buf: Buffer, at: number): number {
  const after = buf[at + DONE.length];
  if (after !== undefined && after !== LF && after !== CR) return -1;
  let i = at - 1;
  if (buf[i] === 0x20) i--;
  // "data:" backwards
  if (buf[i] !== 0x3a || buf[i - 1] !== 0x61 || buf[i - 2] !== 0x74 || buf[i - 3] !== 0x61) return -1;
  if (buf[i - 4] !== 0x64) return -1;
  const before = i - 5;
  return before < 0 || buf[before] === LF || buf[before] === CR ? before + 1 : -1;
}

const ERROR_KEY = Buffer.from('"error"');

export interface ErrorEvent {
  /** Where the error event starts and ends in the buffer of whole events. */
  start: number;
  end: number;
  /** The upstream's message. */
  message: string;
}

/**
 * An in-band error event among whole events: `data: {"error": …}` (vLLM, SGLang, llama.cpp) or vLLM's
 * older `data: {"object": "error", "message": …}`. A normal chunk holds `"error"` only inside escaped
 * text, so one native search rules it out; an event holding it is parsed to be sure.
 */
export function findErrorEvent(buf: Buffer): ErrorEvent | undefined {
  for (let at = buf.indexOf(ERROR_KEY); at >= 0;) {
    const start = lastEventEnd(buf, at);
    let end = eventEndAfter(buf, at);
    if (end < 0) end = buf.length;
    for (const payload of new SseParser().feed(buf.subarray(start, end))) {
      const message = inBandError(payload);
      if (message !== undefined) return { start, end, message };
    }
    at = buf.indexOf(ERROR_KEY, end);
  }
  return undefined;
}

const MAX_ERROR_MESSAGE_CHARS = 500;

/** The message of an in-band error payload, or undefined when the payload is not one. */
export function inBandError(payload: unknown): string | undefined {
  let json: unknown = payload;
  if (typeof payload === 'string') {
    try {
      json = JSON.parse(payload);
    } catch {
      return undefined;
    }
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return undefined;
  const o = json as Record<string, unknown>;
  let message: unknown;
  if (o.error !== undefined && o.error !== null && o.error !== false) {
    const e = o.error;
    message = typeof e === 'object' ? (e as Record<string, unknown>).message : e;
  } else if (o.object === 'error') {
    message = o.message;
  } else {
    return undefined;
  }
  const text = typeof message === 'string' && message.trim() !== '' ? message.trim() : 'an error event';
  return text.length > MAX_ERROR_MESSAGE_CHARS ? `${text.slice(0, MAX_ERROR_MESSAGE_CHARS)}…` : text;
}
