import type { RuntimeEndpointRecord } from './record-store.js';
import type { SqlDriver } from './sql-driver.js';
import { bump } from './sql-values.js';

/**
 * The SQL of the endpoints added at runtime (`runtime_endpoints`, migration 3): their settings as the
 * admin API took them, as JSON. Every change moves the change counter, so that other replicas apply it.
 */
export class SqlEndpoints {
  constructor(private readonly db: SqlDriver) {}

  async list(): Promise<RuntimeEndpointRecord[]> {
    const rows = await this.db.all<{
      name: string;
      spec: string;
      created_at: string | number;
      updated_at: string | number;
    }>('SELECT name, spec, created_at, updated_at FROM runtime_endpoints ORDER BY created_at, name');
    return rows.map((r) => ({
      name: r.name,
      spec: JSON.parse(r.spec) as Record<string, unknown>,
      createdAt: Number(r.created_at),
      updatedAt: Number(r.updated_at),
    }));
  }

  async insert(record: RuntimeEndpointRecord): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const inserted = await tx.run(
        `INSERT INTO runtime_endpoints (name, spec, created_at, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO NOTHING`,
        [record.name, JSON.stringify(record.spec), record.createdAt, record.updatedAt],
      );
      if (inserted === 0) return false;
      await bump(tx);
      return true;
    });
  }

  async update(name: string, spec: Record<string, unknown>, now: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const changed = await tx.run('UPDATE runtime_endpoints SET spec = ?, updated_at = ? WHERE name = ?', [
        JSON.stringify(spec),
        now,
        name,
      ]);
      if (changed === 0) return false;
      await bump(tx);
      return true;
    });
  }

  async delete(name: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const deleted = await tx.run('DELETE FROM runtime_endpoints WHERE name = ?', [name]);
      if (deleted === 0) return false;
      await bump(tx);
      return true;
    });
  }
}
