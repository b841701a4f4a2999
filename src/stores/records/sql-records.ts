import { MIGRATIONS, MIGRATIONS_TABLE } from './migrations.js';
import { SqlUsageLedger } from './sql-usage.js';
import { SqlEndpoints } from './sql-endpoints.js';
import { bump, json, num, parsed } from './sql-values.js';
import type {
  KeyFilter,
  KeyPatch,
  KeyRecord,
  Limits,
  RecordStore,
  TeamPatch,
  TeamRecord,
  UsageFilter,
  UsageGroup,
  UsageRecord,
  UsageTotals,
  RuntimeEndpointRecord,
} from './record-store.js';
import type { SqlDriver, SqlRunner, SqlValue } from './sql-driver.js';

interface KeyRow {
  id: string;
  hash: string;
  preview: string;
  name: string;
  team: string | null;
  user_id: string | null;
  models: string | null;
  expires_at: string | number | null;
  limits: string | null;
  metadata: string | null;
  identity: string | null;
  created_at: string | number;
  updated_at: string | number;
  revoked_at: string | number | null;
  last_used_at: string | number | null;
}

interface TeamRow {
  id: string;
  limits: string | null;
  models: string | null;
  created_at: string | number;
  updated_at: string | number;
}

const KEY_COLUMNS =
  'id, hash, preview, name, team, user_id, models, expires_at, limits, metadata, identity, created_at, ' +
  'updated_at, revoked_at, last_used_at';

/** Key fields and their columns, for updates. */
const KEY_PATCH_COLUMNS: ReadonlyArray<readonly [keyof KeyPatch, string]> = [
  ['name', 'name'],
  ['team', 'team'],
  ['user', 'user_id'],
  ['models', 'models'],
  ['expiresAt', 'expires_at'],
  ['limits', 'limits'],
  ['metadata', 'metadata'],
  ['revokedAt', 'revoked_at'],
  ['hash', 'hash'],
  ['preview', 'preview'],
];

const JSON_FIELDS = new Set<string>(['models', 'limits', 'metadata']);

/** A key that still works at the time given as its parameter. */
const WORKING_KEY = 'revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)';

export class SqlRecordStore implements RecordStore {
  readonly backend: 'sqlite' | 'postgres';
  private readonly usage: SqlUsageLedger;
  private readonly endpoints: SqlEndpoints;

  private constructor(
    private readonly db: SqlDriver,
    readonly location: string,
  ) {
    this.backend = db.dialect;
    this.usage = new SqlUsageLedger(db);
    this.endpoints = new SqlEndpoints(db);
  }

  static async open(db: SqlDriver, location: string): Promise<SqlRecordStore> {
    await migrate(db);
    return new SqlRecordStore(db, location);
  }

  async insertKey(key: KeyRecord): Promise<void> {
    await this.db.transaction(async (tx) => {
      await insertKeyRow(tx, key);
      await bump(tx);
    });
  }

  async claimKey(key: KeyRecord & { identity: string }, now: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      // Takes the identity's row unless the key it names still works. One statement on one row: two
      // replicas claiming at once serialise on it, and the second sees the first's key (PostgreSQL
      // re-reads the conflicting row after the lock, which a subquery on another table would not).
      const taken = await tx.all<{ key_id: string }>(
        `INSERT INTO key_claims (identity, key_id, expires_at, revoked_at) VALUES (?, ?, ?, NULL)
         ON CONFLICT (identity) DO UPDATE
           SET key_id = excluded.key_id, expires_at = excluded.expires_at, revoked_at = NULL
         WHERE key_claims.revoked_at IS NOT NULL
            OR (key_claims.expires_at IS NOT NULL AND key_claims.expires_at <= ?)
         RETURNING key_id`,
        [key.identity, key.id, key.expiresAt, now],
      );
      if (taken.length === 0) return false;
      await insertKeyRow(tx, key);
      await bump(tx);
      return true;
    });
  }

  async getKey(id: string): Promise<KeyRecord | undefined> {
    const rows = await this.db.all<KeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE id = ?`, [id]);
    return rows[0] && keyOf(rows[0]);
  }

  async keyByHash(hash: string): Promise<KeyRecord | undefined> {
    const rows = await this.db.all<KeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE hash = ?`, [hash]);
    return rows[0] && keyOf(rows[0]);
  }

  async listKeys(filter: KeyFilter): Promise<KeyRecord[]> {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (filter.team !== undefined) {
      where.push('team = ?');
      params.push(filter.team);
    }
    if (filter.user !== undefined) {
      where.push('user_id = ?');
      params.push(filter.user);
    }
    if (filter.after !== undefined) {
      // Keyset pagination: the keys after the cursor in (created_at desc, id desc) order.
      where.push(
        '(created_at < (SELECT created_at FROM api_keys WHERE id = ?) OR ' +
          '(created_at = (SELECT created_at FROM api_keys WHERE id = ?) AND id < ?))',
      );
      params.push(filter.after, filter.after, filter.after);
    }
    params.push(filter.limit);
    const rows = await this.db.all<KeyRow>(
      `SELECT ${KEY_COLUMNS} FROM api_keys ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT ?`,
      params,
    );
    return rows.map(keyOf);
  }

  async updateKey(id: string, patch: KeyPatch, now: number): Promise<KeyRecord | undefined> {
    const sets: string[] = ['updated_at = ?'];
    const params: SqlValue[] = [now];
    for (const [field, column] of KEY_PATCH_COLUMNS) {
      if (!(field in patch)) continue;
      sets.push(`${column} = ?`);
      params.push(toColumn(field, patch[field]));
    }
    params.push(id);
    return this.db.transaction(async (tx) => {
      const changed = await tx.run(`UPDATE api_keys SET ${sets.join(', ')} WHERE id = ?`, params);
      if (changed === 0) return undefined;
      if ('revokedAt' in patch || 'expiresAt' in patch)
        await tx.run(
          `UPDATE key_claims SET expires_at = (SELECT expires_at FROM api_keys WHERE id = ?),
             revoked_at = (SELECT revoked_at FROM api_keys WHERE id = ?) WHERE key_id = ?`,
          [id, id, id],
        );
      await bump(tx);
      const rows = await tx.all<KeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE id = ?`, [id]);
      return rows[0] && keyOf(rows[0]);
    });
  }

  async markUsed(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    if (lastUsed.size === 0) return;
    await this.db.transaction(async (tx) => {
      for (const [id, at] of lastUsed) {
        await tx.run(
          'UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)',
          [at, id, at],
        );
      }
    });
  }

  async insertTeam(team: TeamRecord): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const inserted = await tx.run(
        `INSERT INTO teams (id, limits, models, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO NOTHING`,
        [team.id, json(team.limits), json(team.models), team.createdAt, team.updatedAt],
      );
      if (inserted === 0) return false;
      await bump(tx);
      return true;
    });
  }

  async getTeam(id: string): Promise<TeamRecord | undefined> {
    const rows = await this.db.all<TeamRow>(
      'SELECT id, limits, models, created_at, updated_at FROM teams WHERE id = ?',
      [id],
    );
    return rows[0] && teamOf(rows[0]);
  }

  async listTeams(): Promise<TeamRecord[]> {
    const rows = await this.db.all<TeamRow>(
      'SELECT id, limits, models, created_at, updated_at FROM teams ORDER BY id',
    );
    return rows.map(teamOf);
  }

  async updateTeam(id: string, patch: TeamPatch, now: number): Promise<TeamRecord | undefined> {
    const sets: string[] = ['updated_at = ?'];
    const params: SqlValue[] = [now];
    if ('limits' in patch) {
      sets.push('limits = ?');
      params.push(json(patch.limits ?? null));
    }
    if ('models' in patch) {
      sets.push('models = ?');
      params.push(json(patch.models ?? null));
    }
    params.push(id);
    return this.db.transaction(async (tx) => {
      const changed = await tx.run(`UPDATE teams SET ${sets.join(', ')} WHERE id = ?`, params);
      if (changed === 0) return undefined;
      await bump(tx);
      const rows = await tx.all<TeamRow>(
        'SELECT id, limits, models, created_at, updated_at FROM teams WHERE id = ?',
        [id],
      );
      return rows[0] && teamOf(rows[0]);
    });
  }

  async deleteTeam(id: string, now: number): Promise<'deleted' | 'missing' | 'in_use'> {
    return this.db.transaction(async (tx) => {
      const active = await tx.all<{ n: string | number }>(
        `SELECT COUNT(*) AS n FROM api_keys WHERE team = ? AND ${WORKING_KEY}`,
        [id, now],
      );
      if (Number(active[0]?.n ?? 0) > 0) return 'in_use';
      const deleted = await tx.run('DELETE FROM teams WHERE id = ?', [id]);
      if (deleted === 0) return 'missing';
      await bump(tx);
      return 'deleted';
    });
  }

  listEndpoints(): Promise<RuntimeEndpointRecord[]> {
    return this.endpoints.list();
  }

  insertEndpoint(record: RuntimeEndpointRecord): Promise<boolean> {
    return this.endpoints.insert(record);
  }

  updateEndpoint(name: string, spec: Record<string, unknown>, now: number): Promise<boolean> {
    return this.endpoints.update(name, spec, now);
  }

  deleteEndpoint(name: string): Promise<boolean> {
    return this.endpoints.delete(name);
  }

  async activeKeyCount(team: string, now: number): Promise<number> {
    const rows = await this.db.all<{ n: string | number }>(
      `SELECT COUNT(*) AS n FROM api_keys WHERE team = ? AND ${WORKING_KEY}`,
      [team, now],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async hasLimits(): Promise<boolean> {
    const rows = await this.db.all<{ n: string | number }>(
      `SELECT (SELECT COUNT(*) FROM api_keys WHERE limits IS NOT NULL AND limits <> '{}' AND revoked_at IS NULL)
            + (SELECT COUNT(*) FROM teams WHERE limits IS NOT NULL AND limits <> '{}') AS n`,
    );
    return Number(rows[0]?.n ?? 0) > 0;
  }

  insertUsage(records: readonly UsageRecord[]): Promise<void> {
    return this.usage.insert(records);
  }

  recentUsage(limit: number): Promise<UsageRecord[]> {
    return this.usage.recent(limit);
  }

  usageRecords(
    filter: UsageFilter,
    page: { limit: number; before?: number | undefined },
  ): Promise<Array<{ cursor: number; record: UsageRecord }>> {
    return this.usage.records(filter, page);
  }

  usageSummary(
    filter: UsageFilter,
    groupBy: UsageGroup | undefined,
  ): Promise<{ totals: UsageTotals; groups: Array<{ group: string | null } & UsageTotals> }> {
    return this.usage.summary(filter, groupBy);
  }

  pruneUsage(before: number): Promise<number> {
    return this.usage.prune(before);
  }

  async changeCount(): Promise<number> {
    const rows = await this.db.all<{ seq: string | number }>('SELECT seq FROM record_changes WHERE id = 1');
    return Number(rows[0]?.seq ?? 0);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

/** Applies the migrations this database has not had yet, one process at a time. */
async function migrate(db: SqlDriver): Promise<void> {
  await db.transaction(async (tx) => {
    await db.migrationLock(tx);
    await tx.run(MIGRATIONS_TABLE);
    const applied = new Set(
      (await tx.all<{ version: number }>('SELECT version FROM schema_migrations')).map((r) =>
        Number(r.version),
      ),
    );
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      for (const statement of db.dialect === 'sqlite' ? migration.sqlite : migration.postgres)
        await tx.run(statement);
      await tx.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [
        migration.version,
        migration.name,
        Date.now(),
      ]);
    }
  });
}

async function insertKeyRow(tx: SqlRunner, key: KeyRecord): Promise<void> {
  await tx.run(`INSERT INTO api_keys (${KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, [
    key.id,
    key.hash,
    key.preview,
    key.name,
    key.team,
    key.user,
    json(key.models),
    key.expiresAt,
    json(key.limits),
    json(key.metadata),
    key.identity,
    key.createdAt,
    key.updatedAt,
    key.revokedAt,
    key.lastUsedAt,
  ]);
}

function toColumn(field: string, value: unknown): SqlValue {
  if (JSON_FIELDS.has(field)) return json(value ?? null);
  return (value ?? null) as SqlValue;
}

function keyOf(row: KeyRow): KeyRecord {
  return {
    id: row.id,
    hash: row.hash,
    preview: row.preview,
    name: row.name,
    team: row.team,
    user: row.user_id,
    models: parsed<string[]>(row.models),
    expiresAt: num(row.expires_at),
    limits: parsed<Limits>(row.limits),
    metadata: parsed<Record<string, unknown>>(row.metadata),
    identity: row.identity,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    revokedAt: num(row.revoked_at),
    lastUsedAt: num(row.last_used_at),
  };
}

function teamOf(row: TeamRow): TeamRecord {
  return {
    id: row.id,
    limits: parsed<Limits>(row.limits),
    models: parsed<string[]>(row.models),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
