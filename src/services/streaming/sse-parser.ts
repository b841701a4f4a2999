import { StringDecoder } from 'node:string_decoder';

/**
 * Incremental Server-Sent Events parser (the `data:` part of the WHATWG event-stream format): bytes in,
 * complete event payloads out, whatever the chunk boundaries (even inside a UTF-8 character or a CRLF).
 */
export class SseParser {
  private readonly decoder = new StringDecoder('utf8');
  private buffer = '';
  private data: string[] = [];

  feed(chunk: Buffer | string): string[] {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const events: string[] = [];
    let start = 0;
    for (;;) {
      const newline = this.buffer.indexOf('\n', start);
      if (newline === -1) break;
      let line = this.buffer.slice(start, newline);
      start = newline + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (this.data.length > 0) events.push(this.data.join('\n'));
        this.data = [];
      } else if (line.startsWith('data:')) {
        this.data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      }
      // Comments (':') and other fields (event:, id:, retry:) carry nothing the gateway needs.
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }
}
