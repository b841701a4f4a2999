import type { OutgoingHttpHeaders } from 'node:http';

/**
 * The part of an HTTP response the services write to. Structural, so that node's ServerResponse (and
 * express's, which extends it) fits without the services importing either.
 */
export interface ClientResponse {
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  /** True once the whole response was handed to the operating system: a close before that is the client leaving. */
  readonly writableFinished: boolean;
  readonly destroyed: boolean;
  writeHead(status: number, headers?: OutgoingHttpHeaders): unknown;
  write(chunk: Buffer | string): boolean;
  end(chunk?: Buffer | string): unknown;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  removeListener(event: 'drain' | 'close', listener: () => void): unknown;
}

export const SSE_HEADERS: Readonly<OutgoingHttpHeaders> = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
});

export const SSE_HEARTBEAT = ': keep-alive\n\n';
