import type { IncomingHttpHeaders } from 'node:http';
import zlib from 'node:zlib';
import type { Dispatcher } from 'undici';
import type { UpstreamHandler } from './forwarder.js';

/** What undici calls back, as the attempt takes it. */
export interface AttemptCallbacks {
  onRequestStart(controller: Dispatcher.DispatchController): void;
  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void;
  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void;
  onResponseEnd(): void;
  onResponseError(controller: Dispatcher.DispatchController, err: Error): void;
}

/**
 * The handler undici holds for an attempt, forwarding to it. undici's request objects can outlive the
 * request in the old generation until a full collection, and so would everything the attempt points
 * to (the client response, the bodies, the request's state), copied by every young collection until
 * then; the link is cut when the attempt is over, so only this small object stays.
 */
export class UpstreamLink implements UpstreamHandler {
  constructor(public attempt: AttemptCallbacks | undefined) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.attempt?.onRequestStart(controller);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    this.attempt?.onResponseStart(controller, statusCode, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.attempt?.onResponseData(controller, chunk);
  }

  onResponseEnd(): void {
    this.attempt?.onResponseEnd();
  }

  onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    this.attempt?.onResponseError(controller, err);
  }
}

/** The decoder of a `content-encoding`, or undefined for one the gateway cannot decode. */
export function decoderFor(encoding: string): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | undefined {
  if (encoding === 'gzip' || encoding === 'x-gzip') return zlib.createGunzip();
  if (encoding === 'deflate') return zlib.createInflate();
  if (encoding === 'br') return zlib.createBrotliDecompress();
  return undefined;
}
