import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import { AuthenticationError } from '../../errors/gateway-error.js';
import { staticPrincipal, type Principal } from '../../services/core/principal.js';
import { isVirtualKeyFormat } from '../../services/keys/key-secrets.js';
import type { KeyCheck } from '../../services/keys/key-service.js';
import { looksLikeJwt, type JwtCheck } from '../../services/keys/jwt-auth.js';
import { setPrincipal } from '../principal.js';
import { requestTrace } from './access-log.js';

const REALM = 'akash-llm-gateway';

/** Looks a virtual key up (synchronously when it is cached) by the hex of its SHA-256. */
export type VirtualKeys = (secret: string, hash: string) => KeyCheck | Promise<KeyCheck>;

/**
 * Bearer-key auth. Static keys are compared as SHA-256 digests with timingSafeEqual, against every
 * configured key without an early exit, so neither the key nor its length leaks through timing. A key
 * in the virtual format (`sk-gw-…`) that is no static key is looked up by its SHA-256 in the key
 * store: what is compared there is a digest of the secret, which tells nothing about any stored key.
 * A JWT (when JWT_SECRET or JWT_PUBLIC_KEY is set) is verified, once per token while it is valid.
 * The caller is left on the response for the controllers (`principalOf`).
 */
export function bearerAuth(
  keys: () => readonly string[],
  virtualKeys?: VirtualKeys,
  jwt?: JwtTokens,
): RequestHandler {
  // Digests are recomputed only when a configuration reload brings another key list.
  let cachedFor: readonly string[] | undefined;
  let digests: Buffer[] = [];
  let principals: Principal[] = [];
  return (req, res, next) => {
    const current = keys();
    if (current !== cachedFor) {
      cachedFor = current;
      digests = current.map(digest);
      principals = digests.map(staticPrincipal);
    }
    const header = req.headers.authorization;
    if (header === undefined || header.trim() === '') {
      requestTrace(res).authFailure = 'missing';
      res.setHeader('www-authenticate', `Bearer realm="${REALM}"`);
      next(
        new AuthenticationError(
          "Missing API key: send it in the header 'Authorization: Bearer <your key>'.",
          'missing_api_key',
        ),
      );
      return;
    }
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header.trim());
    if (!match) {
      requestTrace(res).authFailure = 'malformed';
      res.setHeader('www-authenticate', `Bearer realm="${REALM}", error="invalid_request"`);
      next(
        new AuthenticationError(
          "Malformed Authorization header: expected 'Authorization: Bearer <your key>'.",
          'invalid_authorization_header',
        ),
      );
      return;
    }
    const token = match[1]!;
    const seen = recentDigest(token);
    const presented = seen.digest;
    let found = -1;
    for (let i = 0; i < digests.length; i++) if (timingSafeEqual(digests[i]!, presented)) found = i;
    if (found >= 0) {
      setPrincipal(res, principals[found]!);
      next();
      return;
    }
    if (virtualKeys && isVirtualKeyFormat(token)) {
      const checked = virtualKeys(token, (seen.hex ??= presented.toString('hex')));
      if ('then' in checked)
        checked.then(
          (c) => admit(c, res, next),
          (err: unknown) => next(err),
        );
      else admit(checked, res, next);
      return;
    }
    if (jwt && looksLikeJwt(token)) {
      const checked = jwt(token);
      if (checked !== undefined) {
        if ('then' in checked)
          checked.then(
            (c) => admitToken(c, res, next),
            (err: unknown) => next(err),
          );
        else admitToken(checked, res, next);
        return;
      }
    }
    refuse(res, next, 'Incorrect API key provided.', 'unknown_key');
  };
}

/** Checks a JWT (undefined while JWTs are off: the token is then refused like any unknown key). */
export type JwtTokens = (token: string) => JwtCheck | Promise<JwtCheck> | undefined;

function admitToken(check: JwtCheck, res: Response, next: (err?: unknown) => void): void {
  if (check.ok) {
    setPrincipal(res, check.principal);
    next();
  } else refuse(res, next, check.message, check.reason);
}

function admit(check: KeyCheck, res: Response, next: (err?: unknown) => void): void {
  if (check.ok) {
    setPrincipal(res, check.principal);
    next();
    return;
  }
  if (check.reason === 'expired')
    refuse(
      res,
      next,
      `This API key expired on ${new Date(check.expiredAt).toISOString()}: ask for a new one.`,
      'expired',
    );
  else if (check.reason === 'revoked') refuse(res, next, 'This API key has been revoked.', 'revoked');
  else refuse(res, next, 'Incorrect API key provided.', 'unknown_key');
}

function refuse(res: Response, next: (err?: unknown) => void, message: string, reason: string): void {
  requestTrace(res).authFailure = reason;
  res.setHeader('www-authenticate', `Bearer realm="${REALM}", error="invalid_token"`);
  next(new AuthenticationError(message, 'invalid_api_key'));
}

/**
 * Digests of recently presented tokens, so that a client's key is hashed once rather than on every
 * request. Keyed by what the client sent, so it says nothing about the configured keys.
 */
const recent = new Map<string, { digest: Buffer; hex: string | undefined }>();
const MAX_RECENT = 1_000;

function recentDigest(token: string): { digest: Buffer; hex: string | undefined } {
  let d = recent.get(token);
  if (!d) {
    d = { digest: digest(token), hex: undefined };
    if (recent.size >= MAX_RECENT) recent.clear();
    recent.set(token, d);
  }
  return d;
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}
