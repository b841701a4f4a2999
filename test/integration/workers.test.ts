import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { CHILD_TIMEOUT_MS, freePort, spawnGateway, waitForOutput } from '../helpers/child-gateway.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();

describe('WORKERS=2', () => {
  it('serves from two processes on one port and stops them all on SIGTERM', async () => {
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
    // Both workers log their own "listening" line.
    await waitForOutput(proc, 'akash llm gateway listening');
    const deadline = Date.now() + CHILD_TIMEOUT_MS;
    while ((proc.stdout().match(/akash llm gateway listening/g) ?? []).length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((proc.stdout().match(/akash llm gateway listening/g) ?? []).length).toBe(2);

    const statuses = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const res = await request(`http://127.0.0.1:${port}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'x' }] }),
        });
        await res.body.text();
        return res.statusCode;
      }),
    );
    expect(statuses.every((s) => s === 200)).toBe(true);

    proc.proc.kill('SIGTERM');
    const exit = await proc.exit;
    expect(exit.code).toBe(0);
  });
});
