import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import type { SqlDriver, SqlRunner, SqlValue } from './sql-driver.js';

/** One connection per file and process, shared by every driver on it (see below), and its queue. */
interface Connection {
  db: BetterSqlite3.Database;
  statements: Map<string, BetterSqlite3.Statement>;
  queue: Promise<unknown>;
  users: number;
}
const connections = new Map<string, Connection>();

/**
 * SQLite through better-sqlite3: the embedded default (`sqlite:data/gateway.db`), nothing to install.
 * WAL mode lets readers go on while one writer writes; several processes (WORKERS) share the file, a
 * writer waiting up to 5 s for another's lock. Calls are synchronous underneath, so operations are
 * queued one after another: an async transaction never sees another operation in the middle of it.
 * Drivers on one file in one process share one connection and its queue: two connections of one
 * thread would wait on each other's lock while blocking the thread that could release it.
 */
export class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  private readonly connection: Connection;
  private readonly key: string;
  private closed = false;

  constructor(file: string) {
    // Each `:memory:` database is its own.
    this.key = file === ':memory:' ? `:memory:${Math.random()}` : path.resolve(file);
    let connection = connections.get(this.key);
    if (!connection) {
      if (file !== ':memory:') mkdirSync(path.dirname(this.key), { recursive: true });
      // Loaded only when SQLite is the store: the native module stays out of a gateway without one.
      const Database = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
      const db = new Database(file);
      db.pragma('busy_timeout = 5000');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      connection = { db, statements: new Map(), queue: Promise.resolve(), users: 0 };
      connections.set(this.key, connection);
    }
    connection.users++;
    this.connection = connection;
  }

  private get db(): BetterSqlite3.Database {
    return this.connection.db;
  }

  all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return this.serial(() => this.allNow<T>(sql, params));
  }

  run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return this.serial(() => this.runNow(sql, params));
  }

  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      const tx: SqlRunner = {
        all: <R>(sql: string, params: readonly SqlValue[] = []) =>
          Promise.resolve(this.allNow<R>(sql, params)),
        run: (sql, params = []) => Promise.resolve(this.runNow(sql, params)),
      };
      try {
        const result = await fn(tx);
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    });
  }

  /** BEGIN IMMEDIATE already holds the database's one write lock. */
  async migrationLock(): Promise<void> {}

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return this.serial(() => {
      if (--this.connection.users > 0) return;
      connections.delete(this.key);
      this.db.close();
    });
  }

  private serial<T>(fn: () => T | Promise<T>): Promise<T> {
    const next = this.connection.queue.then(fn, fn);
    this.connection.queue = next.catch(() => undefined);
    return next;
  }

  private prepared(sql: string): BetterSqlite3.Statement {
    const { statements } = this.connection;
    let statement = statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  }

  private allNow<T>(sql: string, params: readonly SqlValue[]): T[] {
    const statement = this.prepared(sql);
    if (!statement.reader) {
      statement.run(...params);
      return [];
    }
    return statement.all(...params) as T[];
  }

  private runNow(sql: string, params: readonly SqlValue[]): number {
    const statement = this.prepared(sql);
    if (statement.reader) return statement.all(...params).length;
    return statement.run(...params).changes;
  }
}
