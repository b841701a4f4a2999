import { InvalidRequestError } from '../../errors/gateway-error.js';

/**
 * Deepest body the gateway writes again. Far above any real request (tool schemas nest a few dozen
 * levels), and below what JSON.stringify can recurse into on any supported Node version: the answer to
 * a deep body does not depend on the runtime's stack size.
 */
export const MAX_REWRITE_DEPTH = 1_000;

/**
 * The client's body with some top-level fields replaced. The body is otherwise forwarded as it came;
 * writing it again is the only place where its depth matters (JSON.stringify recurses, and a body
 * nested ten thousand levels deep can overflow the stack): such a request is refused, never a 500.
 */
export function rewrittenBody(
  json: Readonly<Record<string, unknown>>,
  changes: Record<string, unknown>,
): Buffer {
  if (deeperThan(json, MAX_REWRITE_DEPTH)) throw tooDeep();
  try {
    return Buffer.from(JSON.stringify({ ...json, ...changes }));
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw tooDeep();
  }
}

function tooDeep(): InvalidRequestError {
  return new InvalidRequestError(
    `The request body is nested too deeply to be forwarded (more than ${MAX_REWRITE_DEPTH} levels).`,
    { code: 'invalid_request' },
  );
}

/** Whether `value` nests objects or arrays more than `limit` levels deep (iterative: no recursion). */
export function deeperThan(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

const INCLUDE_USAGE = Buffer.from('"stream_options":{"include_usage":true},');

/**
 * A stream request that asks upstream for its usage (`stream_options.include_usage`), for the ledger
 * and limits; undefined when the client asked already (or sent something else there, left alone).
 * Without `stream_options` the bytes are spliced after the opening brace, so the body is not written
 * again; otherwise it is rewritten with the option added to the client's.
 */
export function withStreamUsage(
  body: Buffer,
  json: Readonly<Record<string, unknown>>,
): { body: Buffer; json: Readonly<Record<string, unknown>> } | undefined {
  const options = json.stream_options;
  if (options === undefined || options === null) {
    const brace = body.indexOf(0x7b);
    if (brace < 0) return undefined;
    return {
      body: Buffer.concat([body.subarray(0, brace + 1), INCLUDE_USAGE, body.subarray(brace + 1)]),
      json: { ...json, stream_options: { include_usage: true } },
    };
  }
  if (typeof options !== 'object' || Array.isArray(options)) return undefined;
  if ((options as { include_usage?: unknown }).include_usage === true) return undefined;
  const next = { ...json, stream_options: { ...options, include_usage: true } };
  return { body: rewrittenBody(next, {}), json: next };
}
