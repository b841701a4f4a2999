import { createHash } from 'node:crypto';
import type { Principal } from '../core/principal.js';

/**
 * Fields that do not change the answer: how it is delivered (`stream`, `stream_options`), who the
 * end user is (`user`), and the gateway's own extension.
 */
const IGNORED_FIELDS = new Set(['stream', 'stream_options', 'user', 'x-gateway']);

export type CacheScope = 'key' | 'team' | 'global';

/**
 * Who shares an entry: the key (each static key is its own), the key's team (a key without a team is
 * its own scope), or every caller.
 */
export function scopeOf(scope: CacheScope, principal: Principal): string {
  if (scope === 'global') return 'global';
  if (scope === 'team' && principal.team !== null) return `team:${principal.team}`;
  return `key:${principal.keyId}`;
}

/**
 * An entry's key: the request body without the ignored fields, written with every object's keys in
 * order (the order a client wrote them in does not matter), and the scope; hashed.
 */
export function cacheKey(json: Readonly<Record<string, unknown>>, scope: string): string {
  const hash = createHash('sha256');
  hash.update(scope);
  hash.update('\n');
  hash.update(canonical(json, IGNORED_FIELDS));
  return hash.digest('base64url');
}

/** JSON with object keys sorted, so that equal values give equal text. */
export function canonical(value: unknown, ignored?: ReadonlySet<string>): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonical(v)).join(',')}]`;
  const record = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(record).sort()) {
    if (ignored?.has(key)) continue;
    const v = record[key];
    // As JSON.stringify does: an undefined member is no member.
    if (v === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${canonical(v)}`);
  }
  return `{${parts.join(',')}}`;
}
