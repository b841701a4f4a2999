import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { AuthenticationError } from '../../errors/gateway-error.js';

const REALM = 'akash-llm-gateway';

/**
 * Bearer-key auth. Keys are compared as SHA-256 digests with timingSafeEqual, against every configured
 * key without an early exit, so neither the key nor its length leaks through timing.
 */
export function bearerAuth(keys: () => readonly string[]): RequestHandler {
  // Digests are recomputed only when a configuration reload brings another key list.
  let cachedFor: readonly string[] | undefined;
  let digests: Buffer[] = [];
  return (req, res, next) => {
    const current = keys();
    if (current !== cachedFor) {
      cachedFor = current;
      digests = current.map(digest);
    }
    const header = req.headers.authorization;
    if (header === undefined || header.trim() === '') {
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
      res.setHeader('www-authenticate', `Bearer realm="${REALM}", error="invalid_request"`);
      next(
        new AuthenticationError(
          "Malformed Authorization header: expected 'Authorization: Bearer <your key>'.",
          'invalid_authorization_header',
        ),
      );
      return;
    }
    const presented = recentDigest(match[1]!);
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(d, presented) || ok;
    if (!ok) {
      res.setHeader('www-authenticate', `Bearer realm="${REALM}", error="invalid_token"`);
      next(new AuthenticationError('Incorrect API key provided.', 'invalid_api_key'));
      return;
    }
    next();
  };
}

/**
 * Digests of recently presented tokens, so that a client's key is hashed once rather than on every
 * request. Keyed by what the client sent, so it says nothing about the configured keys.
 */
const recent = new Map<string, Buffer>();
const MAX_RECENT = 1_000;

function recentDigest(token: string): Buffer {
  let d = recent.get(token);
  if (!d) {
    d = digest(token);
    if (recent.size >= MAX_RECENT) recent.clear();
    recent.set(token, d);
  }
  return d;
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}
