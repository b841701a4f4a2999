import type { UsageFilter, UsageGroup, UsageRecord, UsageTotals } from './record-store.js';
import type { SqlDriver, SqlValue } from './sql-driver.js';
import { json, num, parsed } from './sql-values.js';

const USAGE_COLUMNS =
  'id, time, key_id, team, user_id, model, served_model, endpoint, stream, status, error_code, ' +
  'prompt_tokens, completion_tokens, estimated, cost, ttft_ms, duration_ms, attempts, cached, metadata';
const USAGE_ROW = `(${USAGE_COLUMNS.split(',')
  .map(() => '?')
  .join(', ')})`;
/** Rows per INSERT, largest first: 20 parameters each, well within both databases' parameter limits. */
const USAGE_CHUNKS = [250, 50, 10, 1] as const;
const USAGE_INSERTS = new Map<number, string>(
  USAGE_CHUNKS.map((n) => [
    n,
    `INSERT INTO usage_records (${USAGE_COLUMNS}) VALUES ${Array.from({ length: n }, () => USAGE_ROW).join(', ')}`,
  ]),
);

/**
 * The record store over SQL, the same statements for SQLite and PostgreSQL. `open` applies the
 * migrations first, under a lock, so that replicas starting together migrate once.
 */
/** The usage ledger's table: batched inserts, pages of records, totals and groups, pruning. */
export class SqlUsageLedger {
  constructor(private readonly db: SqlDriver) {}

  async insert(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.db.transaction(async (tx) => {
      // A few statement sizes only (SQLite keeps each prepared statement): full chunks, then the rest
      // in smaller fixed chunks.
      let i = 0;
      for (const size of USAGE_CHUNKS) {
        for (; records.length - i >= size; i += size) {
          const rows = records.slice(i, i + size);
          const params: SqlValue[] = [];
          for (const r of rows)
            params.push(
              r.id,
              r.time,
              r.keyId,
              r.team,
              r.user,
              r.model,
              r.servedModel,
              r.endpoint,
              r.stream ? 1 : 0,
              r.status,
              r.errorCode,
              r.promptTokens,
              r.completionTokens,
              r.estimated ? 1 : 0,
              r.cost,
              r.ttftMs,
              r.durationMs,
              r.attempts,
              r.cached ? 1 : 0,
              json(r.metadata),
            );
          await tx.run(USAGE_INSERTS.get(size)!, params);
        }
      }
    });
  }

  async recent(limit: number): Promise<UsageRecord[]> {
    const rows = await this.db.all<UsageRow>(
      `SELECT ${USAGE_COLUMNS} FROM usage_records ORDER BY seq DESC LIMIT ?`,
      [limit],
    );
    return rows.map(usageOf);
  }

  async records(
    filter: UsageFilter,
    page: { limit: number; before?: number | undefined },
  ): Promise<Array<{ cursor: number; record: UsageRecord }>> {
    const { where, params } = usageWhere(filter);
    if (page.before !== undefined) {
      where.push('seq < ?');
      params.push(page.before);
    }
    params.push(page.limit);
    const rows = await this.db.all<UsageRow & { seq: string | number }>(
      `SELECT seq, ${USAGE_COLUMNS} FROM usage_records ${whereClause(where)} ORDER BY seq DESC LIMIT ?`,
      params,
    );
    return rows.map((row) => ({ cursor: Number(row.seq), record: usageOf(row) }));
  }

  async summary(
    filter: UsageFilter,
    groupBy: UsageGroup | undefined,
  ): Promise<{ totals: UsageTotals; groups: Array<{ group: string | null } & UsageTotals> }> {
    const { where, params } = usageWhere(filter);
    const sums =
      'COUNT(*) AS requests, COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens, ' +
      'COALESCE(SUM(completion_tokens), 0) AS completion_tokens, COALESCE(SUM(cost), 0) AS cost, ' +
      'COALESCE(SUM(cached), 0) AS cache_hits';
    const [total] = await this.db.all<TotalsRow>(
      `SELECT ${sums} FROM usage_records ${whereClause(where)}`,
      params,
    );
    const totals = totalsOf(total);
    if (groupBy === undefined) return { totals, groups: [] };
    // SQLite would walk an index in group order and fetch every row from the table by it (4 s on a
    // million records, against 0.5 s for one pass over the table): an expression keeps it from that.
    const plain = groupBy === 'day' ? this.dayOf('time') : GROUP_COLUMNS[groupBy];
    const column = this.db.dialect === 'sqlite' && groupBy !== 'day' ? `(${plain} || '')` : plain;
    const rows = await this.db.all<TotalsRow & { grp: string | null }>(
      `SELECT ${column} AS grp, ${sums} FROM usage_records ${whereClause(where)}
       GROUP BY ${column} ORDER BY requests DESC, grp LIMIT 10000`,
      params,
    );
    return { totals, groups: rows.map((r) => ({ group: r.grp, ...totalsOf(r) })) };
  }

  /** The UTC day (YYYY-MM-DD) of an epoch-ms column, in this dialect. */
  private dayOf(column: string): string {
    return this.db.dialect === 'sqlite'
      ? `strftime('%Y-%m-%d', ${column} / 1000, 'unixepoch')`
      : `to_char(to_timestamp(${column} / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')`;
  }

  async prune(before: number): Promise<number> {
    return this.db.run('DELETE FROM usage_records WHERE time < ?', [before]);
  }
}

const GROUP_COLUMNS: Record<Exclude<UsageGroup, 'day'>, string> = {
  key: 'key_id',
  team: 'team',
  user: 'user_id',
  model: 'model',
  endpoint: 'endpoint',
};

interface TotalsRow {
  requests: string | number;
  prompt_tokens: string | number;
  completion_tokens: string | number;
  cost: string | number;
  cache_hits: string | number;
}

function totalsOf(row: TotalsRow | undefined): UsageTotals {
  return {
    requests: Number(row?.requests ?? 0),
    promptTokens: Number(row?.prompt_tokens ?? 0),
    completionTokens: Number(row?.completion_tokens ?? 0),
    cost: Number(row?.cost ?? 0),
    cacheHits: Number(row?.cache_hits ?? 0),
  };
}

function usageWhere(filter: UsageFilter): { where: string[]; params: SqlValue[] } {
  const where: string[] = [];
  const params: SqlValue[] = [];
  const add = (sql: string, value: SqlValue | undefined) => {
    if (value === undefined) return;
    where.push(sql);
    params.push(value);
  };
  add('time >= ?', filter.from);
  add('time < ?', filter.to);
  add('key_id = ?', filter.keyId);
  add('team = ?', filter.team);
  add('model = ?', filter.model);
  return { where, params };
}

function whereClause(where: readonly string[]): string {
  return where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`;
}

interface UsageRow {
  id: string;
  time: string | number;
  key_id: string | null;
  team: string | null;
  user_id: string | null;
  model: string;
  served_model: string | null;
  endpoint: string | null;
  stream: string | number;
  status: string | number;
  error_code: string | null;
  prompt_tokens: string | number;
  completion_tokens: string | number;
  estimated: string | number;
  cost: string | number;
  ttft_ms: string | number | null;
  duration_ms: string | number;
  attempts: string | number;
  cached: string | number;
  metadata: string | null;
}

function usageOf(row: UsageRow): UsageRecord {
  return {
    id: row.id,
    time: Number(row.time),
    keyId: row.key_id,
    team: row.team,
    user: row.user_id,
    model: row.model,
    servedModel: row.served_model,
    endpoint: row.endpoint,
    stream: Number(row.stream) === 1,
    status: Number(row.status),
    errorCode: row.error_code,
    promptTokens: Number(row.prompt_tokens),
    completionTokens: Number(row.completion_tokens),
    estimated: Number(row.estimated) === 1,
    cost: Number(row.cost),
    ttftMs: num(row.ttft_ms),
    durationMs: Number(row.duration_ms),
    attempts: Number(row.attempts),
    cached: Number(row.cached) === 1,
    metadata: parsed<Record<string, unknown>>(row.metadata),
  };
}
