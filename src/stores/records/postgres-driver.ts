import { createRequire } from 'node:module';
import type pg from 'pg';
import type { SqlDriver, SqlRunner, SqlValue } from './sql-driver.js';

/** Any number: the lock that one migrating replica holds while the others wait. */
const MIGRATION_LOCK_ID = 7_341_902_611;

/** PostgreSQL through a `pg` pool: for several replicas sharing keys, teams and the ledger. */
export class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres' as const;
  private readonly pool: pg.Pool;
  /** `?` placeholders numbered once per statement text. */
  private readonly numbered = new Map<string, string>();

  constructor(url: string, options: { max?: number; onError?: (err: Error) => void } = {}) {
    // Loaded only when PostgreSQL is the store: its code stays out of a gateway on SQLite.
    const { Pool } = createRequire(import.meta.url)('pg') as typeof pg;
    this.pool = new Pool({
      connectionString: url,
      max: options.max ?? 10,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle connection the server closed must not become an uncaught 'error' event.
    this.pool.on('error', (err) => options.onError?.(err));
  }

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    const result = await this.pool.query(this.number(sql), params as SqlValue[]);
    return result.rows as T[];
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    const result = await this.pool.query(this.number(sql), params as SqlValue[]);
    return result.rowCount ?? 0;
  }

  async transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    const tx: SqlRunner = {
      all: async <R>(sql: string, params: readonly SqlValue[] = []) =>
        (await client.query(this.number(sql), params as SqlValue[])).rows as R[],
      run: async (sql, params = []) =>
        (await client.query(this.number(sql), params as SqlValue[])).rowCount ?? 0,
    };
    try {
      await client.query('BEGIN');
      const result = await fn(tx);
      await client.query('COMMIT');
      client.release();
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      // A connection in an unknown state is not given back to the pool.
      client.release(true);
      throw err;
    }
  }

  async migrationLock(tx: SqlRunner): Promise<void> {
    await tx.all('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK_ID]);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private number(sql: string): string {
    let out = this.numbered.get(sql);
    if (out === undefined) {
      let n = 0;
      out = sql.replace(/\?/g, () => `$${++n}`);
      this.numbered.set(sql, out);
    }
    return out;
  }
}
