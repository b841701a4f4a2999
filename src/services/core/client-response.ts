/**
 * The part of an HTTP response the services write to. Structural, so that node's ServerResponse (and
 * express's, which extends it) fits without the services importing either.
 */
export interface ClientResponse {
  statusCode: number;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  /** True once the whole response was handed to the operating system: a close before that is the client leaving. */
  readonly writableFinished: boolean;
  readonly destroyed: boolean;
  setHeader(name: string, value: string | number): unknown;
  write(chunk: Buffer | string): boolean;
  end(chunk?: Buffer | string): unknown;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  removeListener(event: 'drain' | 'close', listener: () => void): unknown;
}

/**
 * Makes the response an event stream; the status line (200) and headers go out with the first write.
 * Headers are set one by one rather than passed to writeHead: node then merges nothing.
 */
export function setEventStreamHeaders(res: ClientResponse): void {
  res.setHeader('content-type', 'text/event-stream; charset=utf-8');
  res.setHeader('cache-control', 'no-cache');
  res.setHeader('x-accel-buffering', 'no');
  res.setHeader('connection', 'keep-alive');
}

export const SSE_HEARTBEAT = ': keep-alive\n\n';
