import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { freePort, spawnGateway, waitForOutput } from '../helpers/child-gateway.js';
import { HAS_POSTGRES, HAS_REDIS, postgresSchema, REDIS_URL } from '../helpers/services.js';
import { useTestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-replicas-0123456789';
const CLIENT = 'client-key-for-replicas-0123456789';
const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

/**
 * Three gateway processes on one Redis and one PostgreSQL, as three replicas behind a load balancer:
 * limits hold exactly across them, and a key change reaches every one within a second.
 */
describe.runIf(HAS_REDIS && HAS_POSTGRES)('three replicas on one Redis and one PostgreSQL', () => {
  const bed = useTestBed();

  async function startReplicas(yaml: string, count = 3) {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama', 'qwen'] });
    const database = await postgresSchema('gw_replicas', (fn) => bed.onCleanup(fn));
    const dir = await bed.tempDir('gw-replicas-');
    await writeFile(`${dir}/gateway.yaml`, yaml);
    const common = {
      API_KEY: CLIENT,
      ADMIN_API_KEY: ADMIN,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      CONFIG_FILE: `${dir}/gateway.yaml`,
      ENDPOINTS: JSON.stringify([{ url: upstream.url, name: 'gpu' }]),
      DATABASE_URL: database.url,
      REDIS_URL,
      REDIS_PREFIX: `test-${randomUUID()}:`,
    };
    const urls: string[] = [];
    const procs = [];
    // Started together: the first start migrates the new database while the others wait for it.
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      procs.push(spawnGateway(bed, { ...common, PORT: String(port) }, dir));
      urls.push(`http://127.0.0.1:${port}`);
    }
    const started = await Promise.all(procs);
    for (const p of started) await waitForOutput(p, 'akash llm gateway listening');
    return { upstream, urls, procs: started };
  }

  const chat = (url: string, key: string, body: Record<string, unknown> = {}, signal?: AbortSignal) =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'hi' }], ...body }),
      signal,
    });

  it('a global rpm of 20 admits exactly 20 of 60 concurrent requests spread over the replicas', async () => {
    const { urls, upstream } = await startReplicas('limits:\n  global: { rpm: 20 }\n');
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => chat(urls[i % 3]!, CLIENT)));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(20);
    expect(statuses.filter((s) => s === 429)).toHaveLength(40);
    expect(upstream.requests).toHaveLength(20);
    await Promise.all(answers.map((a) => a.text()));
  });

  it('maxParallel 3 never lets a fourth request reach the upstream, whichever replica takes it', async () => {
    const { urls, upstream } = await startReplicas('{}\n');
    const created = await fetch(`${urls[0]}/api/v1/keys`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'par', limits: { maxParallel: 3 } }),
    }).then((r) => r.json() as Promise<{ key: string }>);
    upstream.defaultBehavior = { type: 'sse', then: 'hang' };
    const aborts = Array.from({ length: 9 }, () => new AbortController());
    const answers = await Promise.all(
      aborts.map((a, i) => chat(urls[i % 3]!, created.key, { stream: true }, a.signal)),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(6);
    expect(upstream.requests).toHaveLength(3);
    for (const a of aborts) a.abort();
  });

  it(
    'a replica killed (-9) while holding in-flight slots: the others get them back within the 30 s lease',
    { timeout: 60_000 },
    async () => {
      const { urls, upstream, procs } = await startReplicas('{}\n', 2);
      const created = await fetch(`${urls[0]}/api/v1/keys`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify({ name: 'par', limits: { maxParallel: 3 } }),
      }).then((r) => r.json() as Promise<{ key: string }>);
      upstream.defaultBehavior = { type: 'sse', then: 'hang' };
      const held = await Promise.all([0, 1, 2].map(() => chat(urls[0]!, created.key, { stream: true })));
      expect(held.map((r) => r.status)).toEqual([200, 200, 200]);
      const refused = await chat(urls[1]!, created.key);
      expect(refused.status).toBe(429);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(
        'concurrency_limit_exceeded',
      );
      // Its slots are never given back: only their lease (30 s, renewed every 10 s while they run) ends.
      procs[0]!.proc.kill('SIGKILL');
      const killedAt = Date.now();
      await procs[0]!.exit;
      for (const r of held) await r.text().catch(() => undefined);
      upstream.defaultBehavior = { type: 'answer' };
      let backAfter = Infinity;
      // Bounded: 45 tries 1 s apart.
      for (let i = 0; i < 45; i++) {
        const res = await chat(urls[1]!, created.key);
        await res.text();
        if (res.status === 200) {
          backAfter = Date.now() - killedAt;
          break;
        }
        expect(res.status).toBe(429);
        await new Promise((r) => setTimeout(r, 1_000));
      }
      expect(backAfter).toBeLessThanOrEqual(31_000);
    },
  );

  it('a revoked key fails on every replica within 1 s', async () => {
    const { urls } = await startReplicas('{}\n');
    const created = await fetch(`${urls[0]}/api/v1/keys`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'soon-revoked' }),
    }).then((r) => r.json() as Promise<{ key: string; id: string }>);
    // Every replica has the key in its cache.
    for (const url of urls) {
      const sdk = new OpenAI({ apiKey: created.key, baseURL: `${url}/v1`, maxRetries: 0 });
      await sdk.models.list();
    }
    const revokedAt = Date.now();
    const revoked = await fetch(`${urls[1]}/api/v1/keys/${created.id}`, { method: 'DELETE', headers: admin });
    expect(revoked.status).toBe(200);
    const refusedAfter = await Promise.all(
      urls.map(async (url) => {
        // Bounded: 40 tries 50 ms apart.
        for (let i = 0; i < 40; i++) {
          const res = await fetch(`${url}/v1/models`, {
            headers: { authorization: `Bearer ${created.key}` },
          });
          if (res.status === 401) return Date.now() - revokedAt;
          await new Promise((r) => setTimeout(r, 50));
        }
        return Infinity;
      }),
    );
    for (const ms of refusedAfter) expect(ms).toBeLessThan(1_000);
  });
});
