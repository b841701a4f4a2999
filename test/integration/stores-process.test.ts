import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqlRecordStore } from '../../src/stores/records/sql-records.js';
import { SqliteDriver } from '../../src/stores/records/sqlite-driver.js';
import { freePort, spawnGateway, waitForOutput } from '../helpers/child-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const env = {
  API_KEY: 'client-key-for-process-tests-01234',
  ADMIN_API_KEY: 'admin-key-for-process-tests-01234',
  HOST: '127.0.0.1',
  ENDPOINTS: '[{"url":"http://127.0.0.1:9"}]',
  LOG_LEVEL: 'info',
};

describe('the real process with its stores', () => {
  const bed = useTestBed();

  it('creates data/gateway.db with its schema by default, and keys survive a restart', async () => {
    const dir = await bed.tempDir('gw-sqlite-');
    const port = String(await freePort());
    const first = await spawnGateway(bed, { ...env, PORT: port }, dir);
    await waitForOutput(first, 'akash llm gateway listening');
    expect(first.stdout()).toContain('"keys":"sqlite:data/gateway.db"');
    const created = await fetch(`http://127.0.0.1:${port}/api/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${env.ADMIN_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'survivor' }),
    }).then((r) => r.json() as Promise<{ key: string }>);
    first.proc.kill('SIGTERM');
    await first.exit;

    const second = await spawnGateway(bed, { ...env, PORT: port }, dir);
    await waitForOutput(second, 'akash llm gateway listening');
    const models = await fetch(`http://127.0.0.1:${port}/v1/models`, {
      headers: { authorization: `Bearer ${created.key}` },
    });
    expect(models.status).toBe(200);
  });

  it('WORKERS > 1 without REDIS_URL while the store holds keys with limits: stops, naming REDIS_URL', async () => {
    const dir = await bed.tempDir('gw-sqlite-');
    const file = path.join(dir, 'keys.db');
    const store = await SqlRecordStore.open(new SqliteDriver(file), file);
    await store.insertTeam({ id: 'capped', limits: { rpm: 10 }, models: null, createdAt: 1, updatedAt: 1 });
    await store.close();
    const proc = await spawnGateway(
      bed,
      { ...env, PORT: String(await freePort()), WORKERS: '2', DATABASE_URL: `sqlite:${file}` },
      dir,
    );
    const exit = await proc.exit;
    expect(exit.code).toBe(1);
    expect(proc.stdout() + proc.stderr()).toMatch(
      /could not start: REDIS_URL is required: the key store holds keys or teams with limits/,
    );
  });

  it('a database that cannot be opened stops start-up with a message that hides its password', async () => {
    const proc = await spawnGateway(bed, {
      ...env,
      PORT: String(await freePort()),
      DATABASE_URL: `postgres://gw:very-secret-pw@127.0.0.1:${await freePort()}/gw`,
    });
    const exit = await proc.exit;
    expect(exit.code).toBe(1);
    const out = proc.stdout() + proc.stderr();
    expect(out).toMatch(
      /could not start: could not open the database at postgres:\/\/gw:redacted@127\.0\.0\.1/,
    );
    expect(out).not.toContain('very-secret-pw');
  });
});
