import type { ClientResponse } from '../core/client-response.js';

/**
 * A client's response that also keeps a copy of what is written to it, for the response cache: the
 * services write to it as to the client's own. Past `maxBytes` the copy is dropped (the answer is too
 * large to keep) and writes go straight through.
 */
export class AnswerCapture implements ClientResponse {
  private chunks: Array<Buffer | string> | undefined = [];
  private bytes = 0;
  /** The content type the services gave the answer. */
  contentType = '';

  constructor(
    private readonly res: ClientResponse,
    private readonly maxBytes: number,
  ) {}

  /** What was written, if it was kept whole. */
  received(): Buffer | undefined {
    if (!this.chunks) return undefined;
    return Buffer.concat(this.chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c)));
  }

  private keep(chunk: Buffer | string | undefined): void {
    if (chunk === undefined || !this.chunks) return;
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) this.chunks = undefined;
    // A copy: a relayed chunk may be a view of a buffer its writer reuses.
    else this.chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk));
  }

  get statusCode(): number {
    return this.res.statusCode;
  }
  set statusCode(code: number) {
    this.res.statusCode = code;
  }
  get headersSent(): boolean {
    return this.res.headersSent;
  }
  get writableEnded(): boolean {
    return this.res.writableEnded;
  }
  get writableFinished(): boolean {
    return this.res.writableFinished;
  }
  get destroyed(): boolean {
    return this.res.destroyed;
  }
  setHeader(name: string, value: string | number): unknown {
    if (name.toLowerCase() === 'content-type') this.contentType = String(value);
    return this.res.setHeader(name, value);
  }
  write(chunk: Buffer | string): boolean {
    this.keep(chunk);
    return this.res.write(chunk);
  }
  end(chunk?: Buffer | string): unknown {
    this.keep(chunk);
    return this.res.end(chunk);
  }
  once(event: 'drain' | 'close', listener: () => void): unknown {
    return this.res.once(event, listener);
  }
  on(event: 'close', listener: () => void): unknown {
    return this.res.on(event, listener);
  }
  removeListener(event: 'drain' | 'close', listener: () => void): unknown {
    return this.res.removeListener(event, listener);
  }
}
