/**
 * Reads a response body as text up to `maxBytes`: past it, either keep what fits (`truncate`, for error
 * messages) or fail (`throw`, for documents that are useless when cut).
 */
export async function readBody(
  body: AsyncIterable<Buffer> | NodeJS.ReadableStream,
  maxBytes: number,
  overflow: 'truncate' | 'throw',
): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    const room = maxBytes - size;
    if (chunk.length > room) {
      if (overflow === 'throw') throw new BodyTooLargeError(maxBytes);
      parts.push(chunk.subarray(0, room));
      size = maxBytes;
      break;
    }
    parts.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(parts).toString('utf8');
}

class BodyTooLargeError extends Error {
  constructor(maxBytes: number) {
    super(`response body larger than ${maxBytes} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * Drops a response body that will not be read (any more). undici's body emits an 'error' when destroyed
 * before its end; with no listener that would be an uncaught exception.
 */
export function discardBody(body: NodeJS.ReadableStream & { destroyed: boolean; destroy(): void }): void {
  if (body.destroyed) return;
  body.on('error', () => undefined);
  body.destroy();
}
