import type { Limits } from '../../stores/records/record-store.js';

/**
 * Who is calling, as auth found it: a virtual key (with its team), one of the static API_KEY keys, a
 * JWT's subject (with the team and models its claims name), or nobody in particular (AUTH_DISABLED). Limits, the model allow-list, the cache scope and the usage
 * ledger read it.
 */
export interface Principal {
  kind: 'virtual' | 'static' | 'jwt' | 'anonymous';
  /**
   * The key's scope id: a virtual key's id; `static-` and 8 hex digits of the key's SHA-256 for an
   * API_KEY key (stable across reloads, and it tells nothing about the key); `jwt:` and the token's
   * `sub` for a JWT; `anonymous`.
   */
  keyId: string;
  keyName: string | undefined;
  team: string | null;
  user: string | null;
  /** The models (or aliases) the caller may use; undefined: all of them. */
  models: ReadonlySet<string> | undefined;
  keyLimits: Limits | undefined;
  teamLimits: Limits | undefined;
  metadata: Readonly<Record<string, unknown>> | undefined;
}

export const ANONYMOUS: Principal = Object.freeze({
  kind: 'anonymous',
  keyId: 'anonymous',
  keyName: undefined,
  team: null,
  user: null,
  models: undefined,
  keyLimits: undefined,
  teamLimits: undefined,
  metadata: undefined,
});

/** The principal of a static key (API_KEY), from its SHA-256 digest: global and model limits only. */
export function staticPrincipal(digest: Buffer): Principal {
  const id = `static-${digest.subarray(0, 4).toString('hex')}`;
  return { ...ANONYMOUS, kind: 'static', keyId: id, keyName: id };
}
