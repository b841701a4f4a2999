import { describe, expect, it } from 'vitest';
import {
  doneLineAt,
  findErrorEvent,
  inBandError,
  SseFramer,
} from '../../src/services/streaming/sse-framing.js';

/** Reference: the offset just after the last blank line (LF or CRLF line ends), by a line parser. */
function referenceEventEnd(text: string): number {
  let end = 0;
  let lineStart = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '\n') continue;
    const line = text.slice(lineStart, i).replace(/\r$/, '');
    if (line === '') end = i + 1;
    lineStart = i + 1;
  }
  return end;
}

/** Reference: whole events contain a `data: [DONE]` / `data:[DONE]` line. */
function referenceDone(events: string): boolean {
  return events.split(/\r?\n/).some((line) => /^data: ?\[DONE\]$/.test(line));
}

const event = (content: string) =>
  `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}}}]}\n\n`;

const STREAMS: Record<string, string> = {
  'plain end': `${event('Hello')}${event(' world')}data: [DONE]\n\n`,
  'no space': `${event('Hi')}data:[DONE]\n\n`,
  'CRLF lines': `${event('Hi').replace(/\n/g, '\r\n')}data: [DONE]\r\n\r\n`,
  'multi-byte text': `${event('héllo wörld ✓ 🙂')}${event('日本語')}data: [DONE]\n\n`,
  'answer mentions [DONE]': `${event('the server sends data: [DONE] at the end')}${event('ok')}data: [DONE]\n\n`,
  'mention, no end': `${event('say [DONE] now')}${event('data: [DONE]')}`,
  'not at a line start': `${event('a')}xdata: [DONE]\n\n`,
  'two spaces': `${event('a')}data:  [DONE]\n\n`,
  'multi-line event': `id: 1\ndata: {"a":\ndata: 1}\n\n${event('b')}`,
  'comment then DONE': `: keep-alive\n\n${event('a')}data: [DONE]\n\n: trailing\n\n`,
  'ends inside an event': `${event('a')}${event('b').slice(0, 30)}`,
  'ends without a blank line': `${event('a')}data: [DONE]`,
};

/** Byte splits: whole, at every two-way and a sample of three-way splits, and byte by byte. */
function splitsOf(bytes: Buffer): Buffer[][] {
  const n = bytes.length;
  const splits: Buffer[][] = [[bytes]];
  for (let i = 1; i < n; i++) splits.push([bytes.subarray(0, i), bytes.subarray(i)]);
  for (let i = 1; i < n; i += 3)
    for (let j = i + 1; j < n; j += 7)
      splits.push([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
  splits.push([...bytes].map((b) => Buffer.from([b])));
  return splits;
}

describe('SseFramer', () => {
  for (const [name, text] of Object.entries(STREAMS)) {
    it(`${name}: passes exactly the whole events at every split and for one-byte chunks`, () => {
      const bytes = Buffer.from(text);
      for (const chunks of splitsOf(bytes)) {
        const framer = new SseFramer();
        const out: Buffer[] = [];
        let fed = 0;
        for (const chunk of chunks) {
          fed += chunk.length;
          out.push(framer.push(chunk));
          const sent = Buffer.concat(out);
          // What went out so far is exactly the whole events among the bytes fed so far.
          expect(sent.length).toBe(referenceEventEnd(bytes.subarray(0, fed).toString('latin1')));
          expect(sent.equals(bytes.subarray(0, sent.length))).toBe(true);
        }
      }
    });
  }

  it('relays a chunk that ends on a boundary as it is, without a copy', () => {
    const chunk = Buffer.from(STREAMS['plain end']!);
    expect(new SseFramer().push(chunk)).toBe(chunk);
  });

  it('completes a held [DONE] line at the end, and drops any other unfinished event', () => {
    const done = new SseFramer();
    done.push(Buffer.from(`${event('a')}data: [DONE]`));
    expect(done.end()?.toString()).toBe('data: [DONE]\n\n');
    const half = new SseFramer();
    half.push(Buffer.from(`${event('a')}data: [DONE]\n`));
    expect(half.end()?.toString()).toBe('data: [DONE]\n\n');
    const cut = new SseFramer();
    cut.push(Buffer.from(STREAMS['ends inside an event']!));
    expect(cut.heldBytes).toBe(30);
    expect(cut.end()).toBeUndefined();
  });
});

describe('doneLineAt', () => {
  for (const [name, text] of Object.entries(STREAMS)) {
    it(`${name}: agrees with a line parser on the whole events`, () => {
      const events = text.slice(0, referenceEventEnd(text));
      const at = doneLineAt(Buffer.from(events));
      expect(at >= 0).toBe(referenceDone(events));
      if (at >= 0) expect(Buffer.from(events).subarray(at).toString()).toMatch(/^data: ?\[DONE\]/);
    });
  }
});

describe('findErrorEvent', () => {
  it('finds an error event among whole events and says where it is', () => {
    const before = event('Hello');
    const error =
      'data: {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}}\n\n';
    const buf = Buffer.from(`${before}${error}data: [DONE]\n\n`);
    expect(findErrorEvent(buf)).toEqual({
      start: before.length,
      end: before.length + error.length,
      message: 'CUDA out of memory',
    });
  });

  it("knows vLLM's older shape and a bare string", () => {
    expect(
      findErrorEvent(Buffer.from('data: {"object":"error","message":"boom","code":400}\n\n'))?.message,
    ).toBe('boom');
    expect(findErrorEvent(Buffer.from('data: {"error":"overloaded"}\n\n'))?.message).toBe('overloaded');
  });

  it('ignores answers that mention errors and chunks with a null error', () => {
    const text = `${event('the "error" key')}${event('{"error": 1}')}data: {"choices":[{"index":0,"delta":{},"finish_reason":"error"}],"error":null}\n\n`;
    expect(findErrorEvent(Buffer.from(text))).toBeUndefined();
  });

  it('caps a long upstream message', () => {
    expect(inBandError({ error: { message: 'x'.repeat(2000) } })).toHaveLength(501);
    expect(inBandError('not json')).toBeUndefined();
    expect(inBandError({ error: {} })).toBe('an error event');
  });
});
