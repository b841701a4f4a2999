/**
 * What the record store needs of a SQL database, small enough for SQLite (synchronous, in-process) and
 * PostgreSQL (a pool of connections) to provide alike. SQL is written once with `?` placeholders;
 * the PostgreSQL driver numbers them.
 */
export type SqlValue = string | number | null;

export interface SqlRunner {
  /** The rows of a query. */
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** Runs a statement; the number of rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
}

export interface SqlDriver extends SqlRunner {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * Runs `fn` in a write transaction (SQLite: BEGIN IMMEDIATE, so that two processes never deadlock on
   * upgrading a read lock; PostgreSQL: READ COMMITTED on one pooled connection), committed if it
   * resolves, rolled back if it throws.
   */
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T>;
  /** Inside a migrating transaction: waits until no other process is migrating the same database. */
  migrationLock(tx: SqlRunner): Promise<void>;
  close(): Promise<void>;
}
