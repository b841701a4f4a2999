import type { ConfigSource } from '../../config/config-store.js';
import { GatewayError } from '../../errors/gateway-error.js';
import type { Logger } from '../../observability/logger.js';
import type {
  KeyPatch,
  KeyRecord,
  Limits,
  RecordStore,
  TeamPatch,
  TeamRecord,
} from '../../stores/records/record-store.js';
import type { Principal } from '../core/principal.js';
import { hashSecret, newKeyId, newSecret, previewOf } from './key-secrets.js';

export interface CreateKeyInput {
  name: string;
  team?: string | undefined;
  user?: string | undefined;
  models?: string[] | undefined;
  expiresAt?: number | undefined;
  limits?: Limits | undefined;
  metadata?: Record<string, unknown> | undefined;
}

/** A key as the admin API shows it: never the secret or its hash. */
export interface KeyView {
  id: string;
  object: 'key';
  name: string;
  team: string | null;
  user: string | null;
  models: string[] | null;
  expiresAt: string | null;
  limits: Limits | null;
  metadata: Record<string, unknown> | null;
  keyPreview: string;
  createdAt: string;
  lastUsedAt: string | null;
  revoked: boolean;
  revokedAt: string | null;
}

export interface TeamView {
  id: string;
  object: 'team';
  limits: Limits | null;
  models: string[] | null;
  createdAt: string;
  updatedAt: string;
}

/** What authenticating a virtual key found. */
export type KeyCheck =
  | { ok: true; principal: Principal }
  | { ok: false; reason: 'unknown' | 'revoked' }
  | { ok: false; reason: 'expired'; expiredAt: number };

/** How often each replica asks the store whether keys or teams changed (revocations hold within 1 s). */
export const CHANGE_POLL_MS = 250;
/** How often the last-use times of keys are written (one batch). */
const LAST_USED_FLUSH_MS = 5_000;
const MAX_CACHED = 100_000;

export interface KeyServiceOptions {
  records: RecordStore;
  config: ConfigSource;
  logger: Logger;
  now?: () => number;
  /**
   * Refuses to create a limit that could not hold (several workers, no shared counters): the reason,
   * or undefined when limits are fine.
   */
  limitsUnavailable?: () => string | undefined;
  /** The store changed (this replica or another): others that keep records in memory read them again. */
  onChange?: () => void;
}

/**
 * Virtual keys and teams: the admin operations, and the lookup of a presented key on the request path.
 * A key found once is kept (with its team) until the store's change counter moves, so that a request
 * costs no database round trip; every replica polls the counter every CHANGE_POLL_MS, so a revocation
 * holds everywhere within a second. Unknown keys are remembered too (a client retrying a wrong key
 * costs nothing), and forgotten on the same change.
 */
export class KeyService {
  private readonly records: RecordStore;
  private readonly now: () => number;
  private readonly cache = new Map<string, KeyRecord | null>();
  private readonly teams = new Map<string, TeamRecord | null>();
  private readonly admitted = new WeakMap<KeyRecord, Extract<KeyCheck, { ok: true }>>();
  private readonly lastUsed = new Map<string, number>();
  private seenChange = -1;
  private pollTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private pollFailed = false;

  constructor(private readonly options: KeyServiceOptions) {
    this.records = options.records;
    this.now = options.now ?? Date.now;
  }

  get store(): RecordStore {
    return this.records;
  }

  /** Starts watching the store for changes made by other replicas. */
  async start(): Promise<void> {
    this.seenChange = await this.records.changeCount();
    this.pollTimer = setInterval(() => void this.poll(), CHANGE_POLL_MS);
    this.pollTimer.unref();
    this.flushTimer = setInterval(() => void this.flushLastUsed(), LAST_USED_FLUSH_MS);
    this.flushTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.pollTimer);
    clearInterval(this.flushTimer);
    await this.flushLastUsed();
  }

  /** Forgets every cached key and team when the store's change counter moved. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const change = await this.records.changeCount();
      if (this.pollFailed) this.options.logger.info('key store reachable again');
      this.pollFailed = false;
      if (change !== this.seenChange) {
        this.seenChange = change;
        this.forget();
        this.options.onChange?.();
      }
    } catch (err) {
      if (!this.pollFailed)
        this.options.logger.error(
          { err: (err as Error).message },
          'key store unreachable: key changes may be missed',
        );
      this.pollFailed = true;
    } finally {
      this.polling = false;
    }
  }

  private forget(): void {
    this.cache.clear();
    this.teams.clear();
  }

  /**
   * The principal of a presented virtual key. Synchronous when the key is cached (nearly every
   * request), a promise when the store has to be asked.
   */
  check(secret: string, hash: string = hashSecret(secret)): KeyCheck | Promise<KeyCheck> {
    // `hash`: the SHA-256 auth computed already (the stored form of a secret is its hex).
    const cached = this.cache.get(hash);
    if (cached !== undefined) {
      const team = cached?.team ? this.teams.get(cached.team) : null;
      if (team !== undefined) return this.verdict(cached, team);
    }
    return this.lookup(hash);
  }

  /**
   * A team's record (null when there is none), from the same cache as keys' teams: synchronous once
   * known, until the store's change counter moves. For callers that name a team themselves (JWTs).
   */
  team(id: string): TeamRecord | null | Promise<TeamRecord | null> {
    const cached = this.teams.get(id);
    if (cached !== undefined) return cached;
    return this.records.getTeam(id).then((team) => {
      this.remember(this.teams, id, team ?? null);
      return team ?? null;
    });
  }

  private async lookup(hash: string): Promise<KeyCheck> {
    const record = (await this.records.keyByHash(hash)) ?? null;
    let team: TeamRecord | null = null;
    if (record?.team) {
      team = this.teams.get(record.team) ?? (await this.records.getTeam(record.team)) ?? null;
      this.remember(this.teams, record.team, team);
    }
    this.remember(this.cache, hash, record);
    return this.verdict(record, team);
  }

  private remember<T>(map: Map<string, T>, key: string, value: T): void {
    if (map.size >= MAX_CACHED) map.clear();
    map.set(key, value);
  }

  private verdict(record: KeyRecord | null, team: TeamRecord | null): KeyCheck {
    if (record === null) return { ok: false, reason: 'unknown' };
    if (record.revokedAt !== null) return { ok: false, reason: 'revoked' };
    const now = this.now();
    if (record.expiresAt !== null && now >= record.expiresAt)
      return { ok: false, reason: 'expired', expiredAt: record.expiresAt };
    this.lastUsed.set(record.id, now);
    // One verdict per record (and so per principal), not an object per request.
    let admitted = this.admitted.get(record);
    if (!admitted) {
      admitted = { ok: true, principal: principalOf(record, team) };
      this.admitted.set(record, admitted);
    }
    return admitted;
  }

  private async flushLastUsed(): Promise<void> {
    if (this.lastUsed.size === 0) return;
    const batch = new Map(this.lastUsed);
    this.lastUsed.clear();
    await this.records
      .markUsed(batch)
      .catch((err: unknown) =>
        this.options.logger.warn(
          { err: (err as Error).message },
          'could not record when keys were last used',
        ),
      );
  }

  // Admin operations --------------------------------------------------------------------------------

  async create(input: CreateKeyInput): Promise<{ view: KeyView; secret: string }> {
    const limits = input.limits ?? defaultLimits(this.options.config.current.limits.keyDefaults);
    await this.checkTeam(input.team);
    this.checkLimitsPossible(limits);
    const secret = newSecret();
    const now = this.now();
    const record: KeyRecord = {
      id: newKeyId(),
      hash: hashSecret(secret),
      preview: previewOf(secret),
      name: input.name,
      team: input.team ?? null,
      user: input.user ?? null,
      models: input.models ?? null,
      expiresAt: input.expiresAt ?? null,
      limits: limits ?? null,
      metadata: input.metadata ?? null,
      identity: null,
      createdAt: now,
      updatedAt: now,
      revokedAt: null,
      lastUsedAt: null,
    };
    await this.records.insertKey(record);
    return { view: keyView(record), secret };
  }

  /**
   * A claimed (permissionless) key: in `team` (made if missing), unless `identity` already holds a
   * working key (undefined then).
   */
  async claim(input: {
    team: string;
    identity: string | undefined;
    expiresAt: number | null;
    limits: Limits | undefined;
    name: string;
  }): Promise<{ record: KeyRecord; secret: string } | undefined> {
    const now = this.now();
    await this.records.insertTeam({
      id: input.team,
      limits: null,
      models: null,
      createdAt: now,
      updatedAt: now,
    });
    const secret = newSecret();
    const record: KeyRecord = {
      id: newKeyId(),
      hash: hashSecret(secret),
      preview: previewOf(secret),
      name: input.name,
      team: input.team,
      user: input.identity ?? null,
      models: null,
      expiresAt: input.expiresAt,
      limits: input.limits ?? null,
      metadata: null,
      identity: input.identity ?? null,
      createdAt: now,
      updatedAt: now,
      revokedAt: null,
      lastUsedAt: null,
    };
    if (input.identity === undefined) await this.records.insertKey(record);
    else if (!(await this.records.claimKey({ ...record, identity: input.identity }, now))) return undefined;
    return { record, secret };
  }

  async list(filter: { team?: string; user?: string; after?: string; limit: number }): Promise<KeyView[]> {
    if (filter.after !== undefined && !(await this.records.getKey(filter.after)))
      throw new GatewayError(`'after' names no key ('${filter.after.slice(0, 100)}'): use a next_cursor.`, {
        code: 'invalid_request',
        param: 'after',
      });
    return (await this.records.listKeys(filter)).map(keyView);
  }

  async get(id: string): Promise<KeyView> {
    return keyView(await this.existing(id));
  }

  async update(id: string, patch: KeyPatch): Promise<KeyView> {
    await this.existing(id);
    if (patch.team !== undefined && patch.team !== null) await this.checkTeam(patch.team);
    if (patch.limits) this.checkLimitsPossible(patch.limits);
    return this.changed(await this.records.updateKey(id, patch, this.now()), id);
  }

  async revoke(id: string): Promise<KeyView> {
    const record = await this.existing(id);
    if (record.revokedAt !== null) return keyView(record);
    return this.changed(await this.records.updateKey(id, { revokedAt: this.now() }, this.now()), id);
  }

  async rotate(id: string): Promise<{ view: KeyView; secret: string }> {
    const record = await this.existing(id);
    if (record.revokedAt !== null)
      throw new GatewayError(`Key '${id}' is revoked: create a new key instead.`, { code: 'key_revoked' });
    const secret = newSecret();
    const updated = await this.records.updateKey(
      id,
      { hash: hashSecret(secret), preview: previewOf(secret) },
      this.now(),
    );
    return { view: this.changed(updated, id), secret };
  }

  async createTeam(team: {
    id: string;
    limits?: Limits | undefined;
    models?: string[] | undefined;
  }): Promise<TeamView> {
    if (team.limits) this.checkLimitsPossible(team.limits);
    const now = this.now();
    const record: TeamRecord = {
      id: team.id,
      limits: team.limits ?? null,
      models: team.models ?? null,
      createdAt: now,
      updatedAt: now,
    };
    if (!(await this.records.insertTeam(record)))
      throw new GatewayError(`A team with the id '${team.id}' exists already.`, {
        code: 'team_exists',
        param: 'id',
      });
    return teamView(record);
  }

  async listTeams(): Promise<TeamView[]> {
    return (await this.records.listTeams()).map(teamView);
  }

  async getTeam(id: string): Promise<TeamView> {
    const team = await this.records.getTeam(id);
    if (!team) throw teamNotFound(id);
    return teamView(team);
  }

  async updateTeam(id: string, patch: TeamPatch): Promise<TeamView> {
    if (patch.limits) this.checkLimitsPossible(patch.limits);
    const team = await this.records.updateTeam(id, patch, this.now());
    if (!team) throw teamNotFound(id);
    this.forget();
    return teamView(team);
  }

  async deleteTeam(id: string): Promise<{ id: string; object: 'team'; deleted: true }> {
    const result = await this.records.deleteTeam(id, this.now());
    if (result === 'missing') throw teamNotFound(id);
    if (result === 'in_use') {
      const n = await this.records.activeKeyCount(id, this.now());
      throw new GatewayError(
        `Team '${id}' still has ${n} key${n === 1 ? '' : 's'} that still work${n === 1 ? 's' : ''} (not revoked, ` +
          'not expired): revoke them (DELETE /api/v1/keys/{id}) or move them to another team first.',
        { code: 'team_in_use' },
      );
    }
    this.forget();
    return { id, object: 'team', deleted: true };
  }

  private async existing(id: string): Promise<KeyRecord> {
    const record = await this.records.getKey(id);
    if (!record) throw keyNotFound(id);
    return record;
  }

  /** After a change made here: this replica forgets at once (the others within CHANGE_POLL_MS). */
  private changed(record: KeyRecord | undefined, id: string): KeyView {
    if (!record) throw keyNotFound(id);
    this.forget();
    return keyView(record);
  }

  private async checkTeam(team: string | undefined): Promise<void> {
    if (team === undefined) return;
    if (!(await this.records.getTeam(team)))
      throw new GatewayError(
        `Team '${team}' does not exist: create it first with POST /api/v1/teams {"id": "${team}"}.`,
        { code: 'invalid_request', param: 'team' },
      );
  }

  private checkLimitsPossible(limits: Limits | undefined): void {
    if (!limits || Object.keys(limits).length === 0) return;
    const reason = this.options.limitsUnavailable?.();
    if (reason) throw new GatewayError(reason, { code: 'limits_need_redis' });
  }
}

function defaultLimits(limits: Limits | undefined): Limits | undefined {
  return limits && Object.keys(limits).length > 0 ? { ...limits } : undefined;
}

/** A principal's allowed models: the key's list within its team's. */
function principalOf(record: KeyRecord, team: TeamRecord | null): Principal {
  let models: Set<string> | undefined;
  if (record.models && team?.models) {
    const teamModels = new Set(team.models);
    models = new Set(record.models.filter((m) => teamModels.has(m)));
  } else if (record.models ?? team?.models) {
    models = new Set(record.models ?? team?.models ?? []);
  }
  return {
    kind: 'virtual',
    keyId: record.id,
    keyName: record.name,
    team: record.team,
    user: record.user,
    models,
    keyLimits: nonEmpty(record.limits),
    teamLimits: nonEmpty(team?.limits ?? null),
    metadata: record.metadata ?? undefined,
  };
}

function nonEmpty(limits: Limits | null): Limits | undefined {
  return limits && Object.keys(limits).length > 0 ? limits : undefined;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function keyView(record: KeyRecord): KeyView {
  return {
    id: record.id,
    object: 'key',
    name: record.name,
    team: record.team,
    user: record.user,
    models: record.models,
    expiresAt: iso(record.expiresAt),
    limits: record.limits,
    metadata: record.metadata,
    keyPreview: record.preview,
    createdAt: iso(record.createdAt)!,
    lastUsedAt: iso(record.lastUsedAt),
    revoked: record.revokedAt !== null,
    revokedAt: iso(record.revokedAt),
  };
}

function teamView(team: TeamRecord): TeamView {
  return {
    id: team.id,
    object: 'team',
    limits: team.limits,
    models: team.models,
    createdAt: iso(team.createdAt)!,
    updatedAt: iso(team.updatedAt)!,
  };
}

function keyNotFound(id: string): GatewayError {
  return new GatewayError(`No key with the id '${id.slice(0, 100)}'.`, { code: 'key_not_found' });
}

function teamNotFound(id: string): GatewayError {
  return new GatewayError(`No team with the id '${id.slice(0, 100)}'.`, { code: 'team_not_found' });
}
