import { describe, expect, it } from 'vitest';
import { SseParser } from '../../src/services/streaming/sse-parser.js';

/** Every payload of `text` fed in the given pieces. */
function parse(pieces: Array<string | Buffer>): string[] {
  const parser = new SseParser();
  return pieces.flatMap((p) => parser.feed(p));
}

const STREAM = 'data: {"a":1}\n\n: comment\n\nid: 7\nevent: x\ndata: two\ndata: lines\n\ndata:[DONE]\n\n';

describe('SseParser', () => {
  it('reads events with LF, CRLF and CR line ends alike, and mixed', () => {
    const expected = ['{"a":1}', 'two\nlines', '[DONE]'];
    expect(parse([STREAM])).toEqual(expected);
    expect(parse([STREAM.replace(/\n/g, '\r\n')])).toEqual(expected);
    expect(parse([STREAM.replace(/\n/g, '\r')])).toEqual(expected);
    expect(parse(['data: a\r\n\ndata: b\r\r'])).toEqual(['a', 'b']);
  });

  it('at every split, also between the CR and the LF of a CRLF and inside a UTF-8 character', () => {
    const text = 'data: héllo 🙂\r\n\r\ndata: 東京\r\n\r\n';
    const bytes = Buffer.from(text);
    for (let i = 0; i <= bytes.length; i++) {
      expect(parse([bytes.subarray(0, i), bytes.subarray(i)]), `split at ${i}`).toEqual(['héllo 🙂', '東京']);
    }
    expect(parse([...bytes].map((b) => Buffer.from([b])))).toEqual(['héllo 🙂', '東京']);
  });

  it('skips a leading byte order mark, only at the start', () => {
    expect(parse(['\uFEFFdata: x\n\n'])).toEqual(['x']);
    expect(parse([Buffer.from([0xef, 0xbb]), Buffer.from([0xbf]), 'data: y\n\n'])).toEqual(['y']);
    expect(parse(['data: \uFEFFz\n\n'])).toEqual(['\uFEFFz']);
  });

  it('a data line without a colon is an empty data field; an unfinished event is not dispatched', () => {
    expect(parse(['data\ndata: b\n\n'])).toEqual(['\nb']);
    expect(parse(['data: cut'])).toEqual([]);
  });
});
