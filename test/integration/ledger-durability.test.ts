import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqlRecordStore } from '../../src/stores/records/sql-records.js';
import { SqliteDriver } from '../../src/stores/records/sqlite-driver.js';
import { freePort, spawnGateway, waitForOutput } from '../helpers/child-gateway.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { HAS_POSTGRES, POSTGRES_URL, postgresSchema } from '../helpers/services.js';
import { useTestBed } from '../helpers/test-bed.js';

const chat = (url: string) =>
  fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'x' }] }),
  }).then((r) => r.text());

/** A TCP proxy to PostgreSQL that a test can cut (every connection reset, new ones refused) and restore. */
async function cuttableProxy(target: { host: string; port: number }) {
  const sockets = new Set<net.Socket>();
  let cut = false;
  const server = net.createServer((client) => {
    if (cut) return client.destroy();
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      cut = false;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

describe('usage ledger durability', () => {
  const bed = useTestBed();

  it('kill -9 after a burst loses nothing that finished more than a second before', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const dir = await bed.tempDir('gw-ledger-kill-');
    const file = path.join(dir, 'gateway.db');
    const port = await freePort();
    const proc = await spawnGateway(
      bed,
      {
        API_KEY: CLIENT_KEY,
        HOST: '127.0.0.1',
        PORT: String(port),
        ENDPOINTS: JSON.stringify([{ url: upstream.url, name: 'gpu' }]),
        DATABASE_URL: `sqlite:${file}`,
        LOG_LEVEL: 'info',
      },
      dir,
    );
    await waitForOutput(proc, 'akash llm gateway listening');
    const url = `http://127.0.0.1:${port}`;
    await Promise.all(Array.from({ length: 60 }, () => chat(url)));
    // The guarantee under test: what finished more than a second ago is on disk.
    await new Promise((r) => setTimeout(r, 1_100));
    proc.proc.kill('SIGKILL');
    await proc.exit;
    const store = await SqlRecordStore.open(new SqliteDriver(file), file);
    const records = await store.recentUsage(1_000);
    await store.close();
    expect(records).toHaveLength(60);
    expect(new Set(records.map((r) => r.id)).size).toBe(60);
  });

  it.runIf(HAS_POSTGRES)(
    'a PostgreSQL that goes away for a while loses nothing: records wait, then go in',
    async () => {
      const { schema } = await postgresSchema('gw_ledger', (fn) => bed.onCleanup(fn));
      const target = new URL(POSTGRES_URL);
      const proxy = await cuttableProxy({ host: target.hostname, port: Number(target.port || 5432) });
      bed.onCleanup(() => proxy.close());
      const viaProxy = new URL(POSTGRES_URL);
      viaProxy.port = String(proxy.port);
      viaProxy.searchParams.set('options', `-c search_path=${schema}`);
      const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
      const gw = await bed.gateway({
        endpoints: [{ url: upstream.url, name: 'gpu' }],
        env: { DATABASE_URL: viaProxy.toString() },
      });
      const { ledger, records } = gw.gateway;
      for (let i = 0; i < 5; i++) await chat(gw.url);
      await ledger.flush();
      proxy.cut();
      for (let i = 0; i < 20; i++) await chat(gw.url);
      await ledger.flush();
      expect(ledger.status.failingSince).not.toBeNull();
      expect(ledger.queued).toBe(20);
      expect(gw.logs.filter((l) => String(l.msg).startsWith('usage ledger cannot be written'))).toHaveLength(
        1,
      );
      proxy.restore();
      // The pool reconnects on the next write; bounded tries, each a real write attempt.
      for (let i = 0; i < 20 && ledger.queued > 0; i++) await ledger.flush();
      expect(ledger.queued).toBe(0);
      expect(ledger.status).toMatchObject({ failingSince: null, dropped: 0, written: 25 });
      expect(await records.recentUsage(100)).toHaveLength(25);
    },
  );
});
