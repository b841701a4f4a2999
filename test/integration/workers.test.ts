import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { once } from 'node:events';
import path from 'node:path';
import { request } from 'undici';
import { describe, expect, it, vi } from 'vitest';
import { CHILD_TIMEOUT_MS, freePort, spawnGateway, waitForOutput } from '../helpers/child-gateway.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();
const ADMIN = 'sk-admin-workers-0123456789';

function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function chatVia(port: number): Promise<{ status: number; endpoint: unknown }> {
  const res = await request(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    // A new connection each time: the primary hands connections to the workers in turn.
    reset: true,
    headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'x' }] }),
  });
  await res.body.text();
  return { status: res.statusCode, endpoint: res.headers['x-gateway-endpoint'] };
}

describe('WORKERS=2', () => {
  it('serves from two processes on one port, logs started once both listen, and stops them all on SIGTERM', async () => {
    const upstream = await bed.upstream('a');
    const port = await freePort();
    const proc = await spawnGateway(bed, {
      API_KEY: CLIENT_KEY,
      PORT: String(port),
      HOST: '127.0.0.1',
      WORKERS: '2',
      ENDPOINTS: JSON.stringify([{ url: upstream.url, name: 'a', models: ['test-model'] }]),
    });
    await waitForOutput(proc, 'started gateway workers');
    // The workers' own lines may be written a little later (each batches its log lines).
    await vi.waitFor(
      () =>
        expect(jsonLines(proc.stdout()).filter((l) => l.msg === 'akash llm gateway listening')).toHaveLength(
          2,
        ),
      { timeout: CHILD_TIMEOUT_MS, interval: 20 },
    );
    const lines = jsonLines(proc.stdout());
    const listening = lines.filter((l) => l.msg === 'akash llm gateway listening');
    const started = lines.findIndex((l) => l.msg === 'started gateway workers');
    expect(lines[started]).toMatchObject({ workers: 2, address: `127.0.0.1:${port}` });
    // Every line says which process wrote it.
    const workerPids = new Set(listening.map((l) => l.pid));
    expect(workerPids.size).toBe(2);
    for (const l of lines) expect(typeof l.pid).toBe('number');
    expect(lines[started]!.pid).toBe(proc.proc.pid);
    expect(new Set(lines[started]!.pids as number[])).toEqual(workerPids);

    const statuses = await Promise.all(Array.from({ length: 20 }, () => chatVia(port)));
    expect(statuses.every((s) => s.status === 200)).toBe(true);

    proc.proc.kill('SIGTERM');
    const exit = await proc.exit;
    expect(exit.code).toBe(0);
  });

  it('the admin reload reaches every worker, through the primary', async () => {
    const a = await bed.upstream({ name: 'a', models: ['test-model'] });
    const b = await bed.upstream({ name: 'b', models: ['test-model'] });
    const dir = await bed.tempDir('gateway-workers-');
    const port = await freePort();
    const dotenv = (url: string, name: string) =>
      writeFile(
        path.join(dir, '.env'),
        `API_KEY=${CLIENT_KEY}\nADMIN_API_KEY=${ADMIN}\nENDPOINTS=[{"url":"${url}","name":"${name}"}]\n`,
      );
    await dotenv(a.url, 'a');
    const proc = await spawnGateway(bed, { PORT: String(port), HOST: '127.0.0.1', WORKERS: '2' }, dir);
    await waitForOutput(proc, 'started gateway workers');

    await dotenv(b.url, 'b');
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      added: string[];
      removed: string[];
      workers: Array<{ pid: number }>;
    };
    expect(body).toMatchObject({ added: ['b'], removed: ['a'] });
    expect(body.workers).toHaveLength(2);
    expect(new Set(body.workers.map((w) => w.pid)).size).toBe(2);
    for (const w of body.workers) expect(w).toMatchObject({ added: ['b'], removed: ['a'] });

    // Both workers answer from the new endpoint.
    const served = await Promise.all(Array.from({ length: 12 }, () => chatVia(port)));
    expect(served.map((s) => s.endpoint)).toEqual(Array(12).fill('b'));
    const status = (await (
      await fetch(`http://127.0.0.1:${port}/api/v1/providers/status`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      })
    ).json()) as { pid: number };
    expect(body.workers.map((w) => w.pid)).toContain(status.pid);

    proc.proc.kill('SIGTERM');
    expect((await proc.exit).code).toBe(0);
  });

  it('a busy port stops the primary at once, without restarting workers in a loop', async () => {
    const upstream = await bed.upstream('a');
    const blocker = net.createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    bed.onCleanup(() => new Promise((resolve) => blocker.close(resolve)));
    const port = (blocker.address() as net.AddressInfo).port;
    const started = Date.now();
    const proc = await spawnGateway(bed, {
      API_KEY: CLIENT_KEY,
      PORT: String(port),
      HOST: '127.0.0.1',
      WORKERS: '2',
      ENDPOINTS: JSON.stringify([{ url: upstream.url, name: 'a', models: ['test-model'] }]),
    });
    const exit = await proc.exit;
    expect(exit.code).toBe(1);
    expect(exit.at - started).toBeLessThan(CHILD_TIMEOUT_MS);
    expect(proc.stderr()).toContain(`port ${port} on 127.0.0.1 is already in use`);
    const lines = jsonLines(proc.stdout());
    expect(lines.filter((l) => l.msg === 'worker died: starting a new one')).toEqual([]);
    expect(lines.some((l) => l.msg === 'started gateway workers')).toBe(false);
  });
});

describe('WORKERS=2 metrics', () => {
  it('one scrape of any worker shows every worker’s requests, summed; so does the dashboard’s traffic', async () => {
    const upstream = await bed.upstream('a');
    const port = await freePort();
    const proc = await spawnGateway(bed, {
      API_KEY: CLIENT_KEY,
      PORT: String(port),
      HOST: '127.0.0.1',
      WORKERS: '2',
      ADMIN_API_KEY: ADMIN,
      ENDPOINTS: JSON.stringify([{ url: upstream.url, name: 'a', models: ['test-model'] }]),
    });
    await waitForOutput(proc, 'started gateway workers');
    for (let i = 0; i < 10; i++) expect((await chatVia(port)).status).toBe(200);
    // Both workers took some of them (connections are handed out in turn): their access lines say so.
    await vi.waitFor(
      () => {
        const served = jsonLines(proc.stdout()).filter(
          (l) => typeof l.msg === 'string' && l.msg.startsWith('POST /v1/chat/completions'),
        );
        expect(served).toHaveLength(10);
        expect(new Set(served.map((l) => l.pid)).size).toBe(2);
      },
      { timeout: CHILD_TIMEOUT_MS, interval: 20 },
    );
    for (let scrape = 0; scrape < 2; scrape++) {
      const res = await request(`http://127.0.0.1:${port}/metrics`, { reset: true });
      expect(res.statusCode).toBe(200);
      const text = await res.body.text();
      const line = text.split('\n').find((l) => l.startsWith('llm_gateway_requests_total{'));
      expect(line).toBe('llm_gateway_requests_total{model="test-model",status="200"} 10');
    }
    // The dashboard's traffic, asked of either worker: both histories, summed by the interval.
    for (let ask = 0; ask < 2; ask++) {
      const res = await request(`http://127.0.0.1:${port}/api/v1/traffic`, {
        reset: true,
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      expect(res.statusCode).toBe(200);
      const traffic = (await res.body.json()) as {
        processes: number;
        recent: { requests: number };
        points: Array<{ requests: number }>;
        endpoints: Record<string, { attempts: number; failures: number }>;
      };
      expect(traffic.processes).toBe(2);
      expect(traffic.recent.requests).toBe(10);
      expect(traffic.points.reduce((n, p) => n + p.requests, 0)).toBe(10);
      expect(traffic.endpoints.a).toMatchObject({ attempts: 10, failures: 0 });
    }
  });
});
