import { describe, expect, it } from 'vitest';
import { DEMO_MODELS, demoEndpoints, startDemoUpstreams } from '../../src/demo/demo.js';
import { demoAnswer } from '../../src/demo/demo-upstream.js';
import { chat, sseData, streamedText } from '../helpers/http.js';
import { seededRandom } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

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
