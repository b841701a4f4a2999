import { describe, expect, it } from 'vitest';
import { DEMO_MODELS, demoEndpoints, startDemoUpstreams } from '../../src/demo/demo.js';
import { demoAnswer } from '../../src/demo/demo-upstream.js';
import { chat, sseData, streamedText } from '../helpers/http.js';
import { seededRandom } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';
import { freePort, spawnSource, waitForOutput } from '../helpers/child-gateway.js';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

const bed = useTestBed();

describe('npm run demo', () => {
  it('serves the demo models through fast, flaky and slow upstreams, failing over invisibly', async () => {
    // The flaky server dies mid-stream half the time: continuation repairs every one of those answers.
    const upstreams = await startDemoUpstreams(seededRandom(11), 0.05, {
      unavailable: 0.2,
      reset: 0.05,
      midStream: 0.5,
    });
    bed.onCleanup(() => Promise.all(upstreams.map((u) => u.stop())));
    const gw = await bed.gateway({
      endpoints: JSON.parse(demoEndpoints(upstreams)) as never,
      random: seededRandom(3),
    });
    const models = (await (await fetch(`${gw.url}/v1/models`, { headers: gw.auth })).json()) as {
      data: Array<{ id: string }>;
    };
    expect(models.data.map((m) => m.id)).toEqual(DEMO_MODELS);

    const statuses: number[] = [];
    const endpoints = new Set<string>();
    let completeStreams = 0;
    for (let i = 0; i < 24; i++) {
      const res = await chat(gw.url, gw.auth, {
        body: { model: DEMO_MODELS[1], stream: true, messages: [{ role: 'user', content: `hello ${i}` }] },
      });
      statuses.push(res.status);
      endpoints.add(String(res.headers['x-gateway-endpoint']));
      if (sseData(res.text).at(-1) === '[DONE]') {
        completeStreams++;
        expect(streamedText(res.text)).toBe(demoAnswer([{ role: 'user', content: `hello ${i}` }]));
      }
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(completeStreams).toBe(24);
    expect(endpoints.has('gpu-fast')).toBe(true);
    expect(gw.logs.filter((l) => l.msg === 'broken stream continued').length).toBeGreaterThan(0);
  });
});

describe('npm run demo, as a newcomer runs it', () => {
  async function runDemo(dir: string) {
    const port = await freePort();
    const proc = await spawnSource(bed, 'src/demo/demo.ts', { PORT: String(port) }, dir);
    await waitForOutput(proc, 'Stop: Ctrl+C');
    bed.onCleanup(async () => {
      proc.proc.kill('SIGTERM');
      await proc.exit;
    });
    return { out: proc.stdout(), url: `http://127.0.0.1:${port}` };
  }

  it('prints its servers, an ENDPOINTS line, curl -i, the status command, and that it read no .env', async () => {
    const { out, url } = await runDemo(await bed.tempDir('demo-'));
    expect(out).toContain(`Akash LLM Gateway demo running at ${url}`);
    expect(out).toContain('No .env file in this directory: demo defaults');
    const servers = [...out.matchAll(/^ {4}gpu-(fast|flaky|slow) +(http:\/\/127\.0\.0\.1:\d+) /gm)].map(
      (m) => m[2],
    );
    expect(servers).toHaveLength(3);
    const line = /^ {4}ENDPOINTS=(.+)$/m.exec(out)?.[1] ?? '';
    const listed = JSON.parse(line) as Array<{ name: string; url: string }>;
    expect(listed.map((e) => e.url)).toEqual(servers);
    expect(out).toContain(`curl -i ${url}/v1/models -H "Authorization: Bearer demo-key"`);
    expect(out).toContain(`curl -i -N ${url}/v1/chat/completions`);
    const status = /curl -s (\S+\/api\/v1\/providers\/status) -H "Authorization: Bearer (\S+)"/.exec(out);
    expect(status?.[2]).toBe('demo-admin-key');
    // The printed commands work.
    const res = await fetch(status![1]!, { headers: { authorization: `Bearer ${status![2]}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { endpoints: Array<{ name: string }> };
    expect(body.endpoints.map((e) => e.name)).toEqual(['gpu-fast', 'gpu-flaky', 'gpu-slow']);
    const models = await fetch(`${url}/v1/models`, { headers: { authorization: 'Bearer demo-key' } });
    expect(models.status).toBe(200);
    expect(out).toMatch(/save as demo\.mjs, an ES module/);
  });

  it('says it read .env, and keeps the keys it set out of the output', async () => {
    const dir = await bed.tempDir('demo-env-');
    await writeFile(path.join(dir, '.env'), 'API_KEY=sk-my-own-demo-key-0123456789\nLOG_LEVEL=warn\n');
    const { out, url } = await runDemo(dir);
    expect(out).toContain(
      `Read ${path.join(dir, '.env')}: its settings apply, except ENDPOINTS and CONFIG_FILE`,
    );
    expect(out).not.toContain('sk-my-own-demo-key-0123456789');
    expect(out).toContain(`curl -i ${url}/v1/models -H "Authorization: Bearer <your API_KEY>"`);
    const models = await fetch(`${url}/v1/models`, {
      headers: { authorization: 'Bearer sk-my-own-demo-key-0123456789' },
    });
    expect(models.status).toBe(200);
  });
});
