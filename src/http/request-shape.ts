import { tracingChannel } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import { pino } from 'pino';
import { pinoHttp } from 'pino-http';
import { TRACE } from './middleware/access-log.js';
import { BODY_READ } from './middleware/raw-body.js';
import { PRINCIPAL } from './principal.js';

/**
 * Written for express 5.3.0 and router 2.3.0, pinned in package.json (`overrides` pins router): another
 * version may add other properties, and `test/integration/request-shape.test.ts` then names them. The
 * upstream issue: https://github.com/expressjs/express/issues/5998 (setPrototypeOf per request).
 *
 * Express gives every request and response a new prototype (`Object.setPrototypeOf` in `app.handle`).
 * V8 shares hidden classes between objects only along cached transitions, and it caches none from an
 * object whose prototype was changed: every property added to the request or the response after that
 * point makes a new hidden class and copies the property table (about 1 KB, in the old generation),
 * for every request, and leaves every property access that sees the object to a slow lookup.
 *
 * So the properties that Express, its router, Node and the gateway add once a request is under way are
 * created here first, with the values they read as before (undefined, or what the prototype holds),
 * before Express takes the objects: later writes then only change values. The test in
 * `test/integration/request-shape.test.ts` checks that no request (completions, error answers, the
 * other routes) adds a property after this point, so that the list stays whole.
 */
export function shapeRequest(req: IncomingMessage, res: ServerResponse): void {
  const r = req as unknown as Record<PropertyKey, unknown>;
  // Set by Express before it changes the prototype; created here so that it is not added later either.
  r.res = res;
  // The router's request state (restored to these values when the request leaves it).
  r.next = undefined;
  r.baseUrl = undefined;
  r.originalUrl = undefined;
  r.params = undefined;
  r.route = undefined;
  // parseurl's cache of the parsed path.
  r._parsedUrl = undefined;
  r.body = undefined;
  // EventEmitter's listener count is inherited (0) until a first listener is added: made an own
  // property with the same value.
  const listenerCount = r._eventsCount;
  r._eventsCount = listenerCount;
  r[BODY_READ] = undefined;
  // pino-http's request id and request-scoped logger.
  r.id = undefined;
  r.log = undefined;
  r.allLogs = undefined;
  // The router's errors already reported to its tracing channel (on requests that end in an error).
  r[PUBLISHED_ERRORS] = undefined;
  for (const symbol of ROUTER_SYMBOLS) r[symbol] = undefined;

  const s = res as unknown as Record<PropertyKey, unknown>;
  s.locals = undefined;
  // Node keeps the defaults on the prototype (200, no message): made own properties with the same values.
  const { statusCode, statusMessage } = res;
  s.statusCode = statusCode;
  s.statusMessage = statusMessage;
  s[TRACE] = undefined;
  s[PRINCIPAL] = undefined;
  // pino-http's response logger and its own (unexported) symbols: start time, request.
  s.log = undefined;
  s.allLogs = undefined;
  for (const symbol of PINO_HTTP_SYMBOLS) s[symbol] = undefined;
}

/** pino-http's symbol-keyed response state, found by running it once on a stand-in request. */
const PINO_HTTP_SYMBOLS: readonly symbol[] = (() => {
  const handler = pinoHttp({
    logger: pino({ enabled: false }),
    autoLogging: false,
    genReqId: () => 'stand-in',
  });
  const res = {};
  handler({ headers: {} } as never, res as never, () => undefined);
  return Object.getOwnPropertySymbols(res);
})();

const PUBLISHED_ERRORS = Symbol.for('router.tracing.publishedErrors');

/**
 * The router's own symbol-keyed request state (the matched route, for its tracing channel) is not
 * exported: it is found by routing a stand-in request once. Not while a tracer listens to the router's
 * channel (it would see the stand-in): the symbol then goes unprimed, which costs only speed.
 */
const ROUTER_SYMBOLS: readonly symbol[] = (() => {
  const channel = tracingChannel('express.router.request');
  if (
    channel.start.hasSubscribers ||
    channel.end.hasSubscribers ||
    channel.asyncStart.hasSubscribers ||
    channel.asyncEnd.hasSubscribers ||
    channel.error.hasSubscribers
  )
    return [];
  const router = express.Router();
  router.get('/', () => undefined);
  const stand = { method: 'GET', url: '/', headers: {} } as unknown as express.Request;
  router(stand, {} as express.Response, () => undefined);
  return Object.getOwnPropertySymbols(stand);
})();
