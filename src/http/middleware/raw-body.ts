import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import type { Request, RequestHandler } from 'express';
import { InvalidRequestError, PayloadTooLargeError } from '../../errors/gateway-error.js';

/**
 * Reads the request body into `req.body` as one Buffer, whatever the content type (it is forwarded
 * byte for byte and parsed once by the controller), up to `limitBytes()`: over it, a 413 before any
 * byte is buffered when content-length says so, else as soon as the limit is passed. gzip, deflate and
 * br bodies are decoded (the limit applies to the decoded size); other encodings get a 415.
 *
 * Our own instead of body-parser's raw(): this sits on the hot path of every completion, and reading
 * chunks into an array needs none of body-parser's charset, type and async-context machinery.
 */
export function rawBody(limitBytes: () => number): RequestHandler {
  return (req, res, next) => {
    const limit = limitBytes();
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
      skipRest(req);
      next(new PayloadTooLargeError(limit));
      return;
    }
    const source = decoded(req);
    if (!source) {
      skipRest(req);
      next(
        new InvalidRequestError(
          `Unsupported content-encoding "${String(req.headers['content-encoding'])}": send the body as identity, gzip, deflate or br.`,
          { code: 'unsupported_encoding' },
        ),
      );
      return;
    }
    if (res.writableEnded) {
      next(aborted());
      return;
    }
    const read: BodyRead = { req, source, limit, chunks: [], size: 0, next };
    (source as Reading)[BODY_READ] = read;
    if (source !== req) (req as Reading)[BODY_READ] = read;
    // Shared listener functions (the read is found on the stream): a request costs no closures here.
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onError);
    req.on('close', onClose);
  };
}

/** One body being read. */
interface BodyRead {
  req: Request;
  /** The request itself, or the decoder of its content-encoding. */
  source: Readable;
  limit: number;
  chunks: Buffer[];
  size: number;
  /** Called once: the body is read (req.body set) or failed; undefined after that. */
  next: ((err?: unknown) => void) | undefined;
}

/** Where a request (or its decoder) keeps the body being read (see request-shape.ts). */
export const BODY_READ = Symbol('gateway.bodyRead');
type Reading = Readable & { [BODY_READ]?: BodyRead };

function onData(this: Reading, chunk: Buffer): void {
  const read = this[BODY_READ]!;
  read.size += chunk.length;
  if (read.size > read.limit) finish(read, new PayloadTooLargeError(read.limit));
  else read.chunks.push(chunk);
}

function onEnd(this: Reading): void {
  finish(this[BODY_READ]!);
}

function onError(this: Reading, err: Error): void {
  const read = this[BODY_READ]!;
  finish(
    read,
    this === read.req
      ? aborted()
      : new InvalidRequestError(`The request body could not be decoded (${err.message}).`, {
          code: 'invalid_body_encoding',
        }),
  );
}

/** A client that leaves mid-body: nobody is left to answer, the error only ends the request's log. */
function onClose(this: Reading): void {
  const read = this[BODY_READ]!;
  if (!read.req.complete) finish(read, aborted());
}

function finish(read: BodyRead, err?: Error): void {
  const next = read.next;
  if (!next) return;
  read.next = undefined;
  const { req, source } = read;
  // Nothing of the read stays reachable from the request (see access-log.ts).
  (req as Reading)[BODY_READ] = undefined;
  (source as Reading)[BODY_READ] = undefined;
  source.removeListener('data', onData);
  source.removeListener('end', onEnd);
  source.removeListener('error', onError);
  req.removeListener('close', onClose);
  if (err) {
    if (source !== req) source.destroy();
    skipRest(req);
    next(err);
    return;
  }
  const { chunks } = read;
  req.body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, read.size);
  read.chunks = [];
  next();
}

function aborted(): InvalidRequestError {
  return new InvalidRequestError('The request body was not fully received.', { code: 'request_aborted' });
}

/** The body stream with its content-encoding undone; undefined for an encoding we cannot decode. */
function decoded(req: IncomingMessage): Readable | undefined {
  const encoding = req.headers['content-encoding']?.trim().toLowerCase();
  if (encoding === undefined || encoding === '' || encoding === 'identity') return req;
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? zlib.createGunzip()
      : encoding === 'deflate'
        ? zlib.createInflate()
        : encoding === 'br'
          ? zlib.createBrotliDecompress()
          : undefined;
  if (!decoder) return undefined;
  req.once('error', (err) => decoder.destroy(err));
  return req.pipe(decoder);
}

/**
 * The rest of a body we will not use is read and dropped, so that the answer reaches a client that is
 * still sending and the keep-alive connection stays usable.
 */
function skipRest(req: IncomingMessage): void {
  req.unpipe();
  req.resume();
}
