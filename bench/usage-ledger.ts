/**
 * `npm run bench:usage`: the usage API's queries on a generated ledger of USAGE_RECORDS records (one
 * million by default), on SQLite and, when one answers at BENCH_POSTGRES_URL (default
 * postgres://postgres@127.0.0.1:5432/test, a schema of its own, dropped after), on PostgreSQL. The
 * records span 90 days, 200 keys in 20 teams, 12 models. Prints the insert rate and each query's median
 * time over 5 runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { PostgresDriver } from '../src/stores/records/postgres-driver.js';
import type { RecordStore, UsageRecord } from '../src/stores/records/record-store.js';
import { SqlRecordStore } from '../src/stores/records/sql-records.js';
import { SqliteDriver } from '../src/stores/records/sqlite-driver.js';
import { median, table } from './lib/stats.js';

const COUNT = Number(process.env.USAGE_RECORDS ?? 1_000_000);
const PG_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const DAY = 86_400_000;
const END = Date.parse('2026-12-01T00:00:00Z');

function* generate(): Generator<UsageRecord[]> {
  let seed = 42;
  const rand = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const batch = 5_000;
  for (let i = 0; i < COUNT; i += batch) {
    const rows: UsageRecord[] = [];
    for (let j = i; j < Math.min(COUNT, i + batch); j++) {
      const key = Math.floor(rand() * 200);
      rows.push({
        id: `req-${j}`,
        time: END - 90 * DAY + Math.floor((j / COUNT) * 90 * DAY),
        keyId: `key_${key}`,
        team: `team_${key % 20}`,
        user: `user_${key}`,
        model: `model-${Math.floor(rand() * 12)}`,
        servedModel: null,
        endpoint: `gpu-${Math.floor(rand() * 8)}`,
        stream: rand() < 0.7,
        status: rand() < 0.97 ? 200 : 429,
        errorCode: null,
        promptTokens: Math.floor(rand() * 2_000),
        completionTokens: Math.floor(rand() * 800),
        estimated: false,
        cost: rand() / 100,
        ttftMs: 200,
        durationMs: 2_000,
        attempts: 1,
        cached: rand() < 0.1,
        metadata: null,
      });
    }
    yield rows;
  }
}

async function measure(name: string, store: RecordStore): Promise<string[][]> {
  const started = performance.now();
  for (const rows of generate()) await store.insertUsage(rows);
  const insertS = (performance.now() - started) / 1_000;
  console.log(
    `${name}: ${COUNT} records in ${insertS.toFixed(1)} s (${Math.round(COUNT / insertS)} per second)`,
  );
  const last30 = { from: END - 30 * DAY, to: END };
  const queries: Array<[string, () => Promise<unknown>]> = [
    ['totals, all records', () => store.usageSummary({}, undefined)],
    ['by model, last 30 days', () => store.usageSummary(last30, 'model')],
    ['by day, one team', () => store.usageSummary({ team: 'team_3' }, 'day')],
    ['by model, one key, last 30 days', () => store.usageSummary({ ...last30, keyId: 'key_7' }, 'model')],
    ['by key, all records', () => store.usageSummary({}, 'key')],
    ['records: first page of 100, one key', () => store.usageRecords({ keyId: 'key_7' }, { limit: 100 })],
    ['records: first page of 100, all', () => store.usageRecords({}, { limit: 100 })],
  ];
  const rows: string[][] = [];
  for (const [label, run] of queries) {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await run();
      times.push(performance.now() - t);
    }
    rows.push([name, label, median(times).toFixed(1)]);
  }
  return rows;
}

const results: string[][] = [];
const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-usage-'));
const file = path.join(dir, 'ledger.db');
const sqlite = await SqlRecordStore.open(new SqliteDriver(file), file);
results.push(...(await measure('sqlite', sqlite)));
await sqlite.close();
rmSync(dir, { recursive: true, force: true });

const schema = `bench_usage_${process.pid}`;
const admin = new pg.Client({ connectionString: PG_URL });
const hasPg = await admin.connect().then(
  () => true,
  () => false,
);
if (hasPg) {
  await admin.query(`CREATE SCHEMA ${schema}`);
  const url = `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  const store = await SqlRecordStore.open(new PostgresDriver(url, { max: 2 }), url);
  try {
    results.push(...(await measure('postgres', store)));
  } finally {
    await store.close();
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  }
} else console.log(`postgres: skipped (nothing answers at ${PG_URL})`);

console.log(`\n${table(['store', `query on ${COUNT} records`, 'median ms'], results)}`);
