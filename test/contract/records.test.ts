import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll } from 'vitest';
import { PostgresDriver } from '../../src/stores/records/postgres-driver.js';
import { SqlRecordStore } from '../../src/stores/records/sql-records.js';
import { SqliteDriver } from '../../src/stores/records/sqlite-driver.js';
import { HAS_POSTGRES, POSTGRES_URL } from '../helpers/services.js';
import { recordStoreContract } from './record-store.contract.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-records-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

recordStoreContract('sqlite', () => {
  const file = path.join(dir, `${randomUUID()}.db`);
  return Promise.resolve(() => SqlRecordStore.open(new SqliteDriver(file), `sqlite:${file}`));
});

if (HAS_POSTGRES) {
  const schemas: string[] = [];
  afterAll(async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });
  recordStoreContract('postgres', async () => {
    // A schema of its own per database: tests never see each other's rows.
    const schema = `gw_test_${randomUUID().replace(/-/g, '')}`;
    schemas.push(schema);
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.end();
    const url = `${POSTGRES_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    return () => SqlRecordStore.open(new PostgresDriver(url, { max: 4 }), url);
  });
}
