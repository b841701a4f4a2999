import { describe, expect, it } from 'vitest';
import { DoneDetector } from '../../src/services/stream-relay.js';

/**
 * Reference: the text contains a `data: [DONE]` / `data:[DONE]` line ended by a line break, or, when
 * the stream is over, as its last line.
 */
function referenceDone(text: string, over: boolean): boolean {
  const lines = text.split(/\r\n|\r|\n/);
  return lines.some((line, i) => /^data: ?\[DONE\]$/.test(line) && (i < lines.length - 1 || over));
}

/** The index of the chunk at which the detector first says done (the last one if at the end), or -1. */
function detectAt(chunks: string[]): number {
  const d = new DoneDetector();
  const at = chunks.findIndex((c) => d.feed(Buffer.from(c)));
  if (at >= 0) return at;
  return d.endsWithDone() ? chunks.length - 1 : -1;
}

/** The index of the chunk after which the reference first sees the line, or -1. */
function referenceAt(chunks: string[]): number {
  let text = '';
  for (const [i, c] of chunks.entries()) {
    text += c;
    if (referenceDone(text, i === chunks.length - 1)) return i;
  }
  return -1;
}

const event = (content: string) =>
  `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}}}]}\n\n`;

const STREAMS: Record<string, string> = {
  'plain end': `${event('Hello')}${event(' world')}data: [DONE]\n\n`,
  'no space': `${event('Hi')}data:[DONE]\n\n`,
  'CRLF lines': `${event('Hi').replace(/\n/g, '\r\n')}data: [DONE]\r\n\r\n`,
  'only DONE': 'data: [DONE]\n\n',
  'answer mentions [DONE]': `${event('the server sends data: [DONE] at the end')}${event('ok')}data: [DONE]\n\n`,
  'mention, no end': `${event('say [DONE] now')}${event('data: [DONE]')}`,
  'not at a line start': `${event('a')}xdata: [DONE]\n\n`,
  'text after the token': `${event('a')}data: [DONE]x\n\n`,
  'two spaces': `${event('a')}data:  [DONE]\n\n`,
  'ends without a break': `${event('a')}data: [DONE]`,
  'comment then DONE': `: keep-alive\n\n${event('a')}data: [DONE]\n\n: trailing\n\n`,
};

describe('DoneDetector', () => {
  for (const [name, text] of Object.entries(STREAMS)) {
    it(`${name}: agrees with a line parser at every split and for one-byte chunks`, () => {
      // Whole, at every two-way and a sample of three-way splits, and byte by byte.
      const splits: string[][] = [[text]];
      for (let i = 1; i < text.length; i++) splits.push([text.slice(0, i), text.slice(i)]);
      for (let i = 1; i < text.length; i += 3)
        for (let j = i + 1; j < text.length; j += 7)
          splits.push([text.slice(0, i), text.slice(i, j), text.slice(j)]);
      splits.push([...text]);
      for (const chunks of splits) {
        const expected = referenceAt(chunks);
        if (detectAt(chunks) !== expected)
          expect({ chunks, got: detectAt(chunks) }).toEqual({ chunks, got: expected });
      }
    });
  }

  it('says done for the real end of a stream and never for a mere mention', () => {
    expect(detectAt([STREAMS['plain end']!])).toBe(0);
    expect(detectAt([STREAMS['mention, no end']!])).toBe(-1);
    expect(detectAt([STREAMS['not at a line start']!])).toBe(-1);
    expect(detectAt([STREAMS['text after the token']!])).toBe(-1);
  });
});
