import { StringDecoder } from 'node:string_decoder';

const LINE_END = /\r\n|\r|\n/g;

/**
 * Incremental Server-Sent Events parser (the `data` field of the WHATWG event-stream format): bytes in,
 * complete event payloads out, whatever the chunk boundaries (inside a UTF-8 character, between the CR
 * and the LF of a CRLF). Lines end with CRLF, LF or CR; a leading byte order mark is skipped.
 */
export class SseParser {
  private readonly decoder = new StringDecoder('utf8');
  private buffer = '';
  private data: string[] = [];
  private started = false;
  /** The last text ended with a CR: an LF that starts the next one belongs to that line end. */
  private pendingLf = false;
  /** Comment lines seen so far (heartbeats: a stream that waits but is alive). */
  comments = 0;

  feed(chunk: Buffer | string): string[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    if (text === '') return [];
    if (!this.started) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.pendingLf && text.charCodeAt(0) === 0x0a) text = text.slice(1);
    this.pendingLf = text.charCodeAt(text.length - 1) === 0x0d;
    this.buffer += text;
    const events: string[] = [];
    let start = 0;
    LINE_END.lastIndex = 0;
    for (let m = LINE_END.exec(this.buffer); m; m = LINE_END.exec(this.buffer)) {
      this.line(this.buffer.slice(start, m.index), events);
      start = m.index + m[0].length;
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  private line(line: string, events: string[]): void {
    if (line === '') {
      if (this.data.length > 0) events.push(this.data.join('\n'));
      this.data = [];
    } else if (line.startsWith('data:')) {
      this.data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
    } else if (line === 'data') {
      this.data.push('');
    } else if (line.charCodeAt(0) === 0x3a) {
      this.comments++;
    }
    // Comments (':') and other fields (event:, id:, retry:) carry nothing the gateway needs.
  }
}
