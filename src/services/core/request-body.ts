import { InvalidRequestError } from '../../errors/gateway-error.js';

/**
 * The client's body with some top-level fields replaced. The body is otherwise forwarded as it came;
 * writing it again is the only place where its depth matters (JSON.stringify recurses, and a body
 * nested ten thousand levels deep overflows the stack): such a request is refused, never a 500.
 */
export function rewrittenBody(
  json: Readonly<Record<string, unknown>>,
  changes: Record<string, unknown>,
): Buffer {
  try {
    return Buffer.from(JSON.stringify({ ...json, ...changes }));
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new InvalidRequestError('The request body is nested too deeply to be forwarded.', {
      code: 'invalid_request',
    });
  }
}
