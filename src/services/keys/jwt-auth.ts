import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import type { errors as JoseErrors, JWTPayload } from 'jose';
import type * as Jose from 'jose';
import type { TeamRecord } from '../../stores/records/record-store.js';
import type { Principal } from '../core/principal.js';

export interface JwtSettings {
  secret?: string | undefined;
  publicKey?: string | undefined;
  issuer?: string | undefined;
  audience?: string | undefined;
}

/** A verified token's caller, or why the token is refused (a sentence for the client, no secret in it). */
export type JwtCheck =
  { ok: true; principal: Principal } | { ok: false; message: string; reason: JwtRefusal };

/** Why a token was refused (logged for the operator; the client reads the message). */
export type JwtRefusal =
  'jwt_expired' | 'jwt_signature' | 'jwt_algorithm' | 'jwt_not_yet_valid' | 'jwt_claims' | 'jwt_invalid';

/** How far clocks may disagree on `exp` and `nbf`. */
const CLOCK_SKEW_S = 30;
/** Verified tokens kept (until they expire), so that a client's token is verified once, not per request. */
const MAX_CACHED = 10_000;

/** jose, loaded with the first token: a gateway without JWT settings never loads it. */
let jose: Promise<typeof Jose> | undefined;
const loadJose = () => (jose ??= import('jose'));

/** A compact JWS: three base64url parts, the first a JSON header (`eyJ`). */
export function looksLikeJwt(token: string): boolean {
  return token.startsWith('eyJ') && token.split('.').length === 3;
}

/**
 * JWTs as client credentials (CONFIG.md: JWT_SECRET for HS256, JWT_PUBLIC_KEY for RS256/ES256): `exp`
 * required, `nbf` honoured, 30 s of clock skew, issuer and audience checked when configured. The
 * subject (`sub`) is the usage identity; the claims `team` and `models` apply like a key's team and
 * allow-list (a team's limits and models come from its record, when it has one).
 */
export class JwtAuth {
  private readonly key: KeyObject;
  private readonly algorithms: string[];
  private readonly cache = new Map<string, Verified>();

  constructor(
    private readonly settings: JwtSettings,
    private readonly teams: (id: string) => TeamRecord | null | Promise<TeamRecord | null>,
    private readonly now: () => number = Date.now,
  ) {
    if (settings.secret !== undefined) {
      this.key = createSecretKey(Buffer.from(settings.secret, 'utf8'));
      this.algorithms = ['HS256'];
    } else if (settings.publicKey !== undefined) {
      this.key = createPublicKey(settings.publicKey.replace(/\\n/g, '\n'));
      this.algorithms = this.key.asymmetricKeyType === 'rsa' ? ['RS256'] : ['ES256'];
    } else throw new Error('JwtAuth needs a secret or a public key');
  }

  /** Whether the settings turn JWTs on. */
  static enabled(settings: JwtSettings): boolean {
    return settings.secret !== undefined || settings.publicKey !== undefined;
  }

  /**
   * The caller of a token: synchronous when it was verified before, has not expired and its team's
   * record is cached (the key service forgets teams when the store changes: a team's new limits apply).
   */
  check(token: string): JwtCheck | Promise<JwtCheck> {
    const cached = this.cache.get(token);
    if (cached && this.now() < cached.expiresAt) {
      if (cached.team === null) return cached.check;
      const team = this.teams(cached.team);
      if (team === cached.record) return cached.check;
      if (!(team instanceof Promise)) return this.remember(token, cached, team);
      return team.then((record) => this.remember(token, cached, record));
    }
    if (cached) this.cache.delete(token);
    return this.verify(token);
  }

  /** The verdict of a verified token with its team's record as it is now. */
  private remember(token: string, verified: Omit<Verified, 'record' | 'check'>, record: TeamRecord | null) {
    const check: JwtCheck = {
      ok: true,
      principal: principalOf(verified.sub, verified.team, verified.models, record),
    };
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    this.cache.set(token, { ...verified, record, check });
    return check;
  }

  private async verify(token: string): Promise<JwtCheck> {
    const { jwtVerify, errors } = await loadJose();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: this.algorithms,
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        clockTolerance: CLOCK_SKEW_S,
        requiredClaims: ['exp'],
        currentDate: new Date(this.now()),
      }));
    } catch (err) {
      return { ok: false, ...this.refusal(err, errors) };
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || sub.trim() === '' || sub.length > 256)
      return {
        ok: false,
        reason: 'jwt_claims',
        message: "The token has no 'sub' claim (the caller's identity): add one.",
      };
    const teamClaim = payload.team;
    if (teamClaim !== undefined && (typeof teamClaim !== 'string' || teamClaim.length > 64))
      return {
        ok: false,
        reason: 'jwt_claims',
        message: "The token's 'team' claim must be a team id (text of at most 64 characters).",
      };
    const modelsClaim = payload.models;
    if (
      modelsClaim !== undefined &&
      (!Array.isArray(modelsClaim) || !modelsClaim.every((m) => typeof m === 'string'))
    )
      return {
        ok: false,
        reason: 'jwt_claims',
        message: "The token's 'models' claim must be a list of model ids.",
      };
    const record = teamClaim === undefined ? null : await this.teams(teamClaim);
    // Kept until its `exp` (plus the skew jose allowed it): a cached token never outlives its validity.
    const verified = {
      sub,
      team: teamClaim ?? null,
      models: modelsClaim,
      expiresAt: (payload.exp! + CLOCK_SKEW_S) * 1_000,
    };
    return this.remember(token, verified, record);
  }

  private refusal(err: unknown, errors: typeof JoseErrors): { message: string; reason: JwtRefusal } {
    if (err instanceof errors.JWTExpired) {
      const exp = typeof err.payload.exp === 'number' ? new Date(err.payload.exp * 1_000).toISOString() : '';
      return {
        reason: 'jwt_expired',
        message: `The token expired${exp ? ` at ${exp}` : ''}: get a new one.`,
      };
    }
    if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported)
      return {
        reason: 'jwt_algorithm',
        message: `The token is signed with an algorithm this gateway does not accept: it takes ${this.algorithms.join(', ')} tokens.`,
      };
    if (err instanceof errors.JWSSignatureVerificationFailed)
      return {
        reason: 'jwt_signature',
        message: "The token's signature does not verify: it was not signed with this gateway's key.",
      };
    if (err instanceof errors.JWTClaimValidationFailed) {
      if (err.claim === 'nbf')
        return {
          reason: 'jwt_not_yet_valid',
          message: 'The token is not valid yet (its nbf is in the future).',
        };
      const message =
        err.claim === 'exp'
          ? "The token has no 'exp' claim: tokens must expire."
          : err.claim === 'iss'
            ? `The token's issuer is not the one this gateway expects.`
            : err.claim === 'aud'
              ? `The token's audience is not this gateway.`
              : `The token's '${err.claim}' claim is not valid.`;
      return { reason: 'jwt_claims', message };
    }
    return { reason: 'jwt_invalid', message: 'The token is not a valid JWT.' };
  }
}

/** A verified token: its claims, and the verdict made with the team record it was checked against. */
interface Verified {
  sub: string;
  team: string | null;
  models: readonly string[] | undefined;
  expiresAt: number;
  record: TeamRecord | null;
  check: JwtCheck;
}

function principalOf(
  sub: string,
  team: string | null,
  models: readonly string[] | undefined,
  record: TeamRecord | null,
): Principal {
  let allowed: Set<string> | undefined;
  if (models && record?.models) {
    const teamModels = new Set(record.models);
    allowed = new Set(models.filter((m) => teamModels.has(m)));
  } else if (models ?? record?.models) allowed = new Set(models ?? record?.models ?? []);
  const limits = record?.limits;
  return {
    kind: 'jwt',
    keyId: `jwt:${sub}`,
    keyName: sub,
    team,
    user: sub,
    models: allowed,
    keyLimits: undefined,
    teamLimits: limits && Object.keys(limits).length > 0 ? limits : undefined,
    metadata: undefined,
  };
}
