import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Socket } from 'node:net';

/**
 * Whether a local service (Redis, PostgreSQL) answers on its port. Tests of a backend use the real
 * server; without it they skip with a message, except under REQUIRE_SERVICES=1 (CI), where a missing
 * service fails the run instead.
 */
export async function serviceAvailable(name: string, port: number, host = '127.0.0.1'): Promise<boolean> {
  const up = await new Promise<boolean>((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host, () => done(true));
  });
  if (up) return true;
  if (process.env.REQUIRE_SERVICES === '1')
    throw new Error(`${name} is required (REQUIRE_SERVICES=1) but nothing answers on ${host}:${port}`);
  console.warn(
    `skipping ${name} tests: nothing answers on ${host}:${port} (set REQUIRE_SERVICES=1 to fail instead)`,
  );
  return false;
}

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const HAS_REDIS = await serviceAvailable('Redis', 6379);
export const HAS_POSTGRES = await serviceAvailable('PostgreSQL', 5432);

/**
 * A schema of its own in the test database (tests never see each other's rows), dropped at cleanup;
 * with the URL that uses it.
 */
export async function postgresSchema(
  prefix: string,
  onCleanup: (fn: () => Promise<void>) => void,
): Promise<{ schema: string; url: string }> {
  const schema = `${prefix}_${randomUUID().replace(/-/g, '')}`;
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.end();
  onCleanup(async () => {
    const c = new pg.Client({ connectionString: POSTGRES_URL });
    await c.connect();
    await c.query(`DROP SCHEMA ${schema} CASCADE`);
    await c.end();
  });
  return { schema, url: `${POSTGRES_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}` };
}
