import { afterEach, describe, expect, it } from 'vitest';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { chat, sseData, streamBody, streamedText } from '../helpers/http.js';
import { startGateway, type TestGateway } from '../helpers/start-gateway.js';

let upstreams: FakeUpstream[] = [];
let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  await Promise.all(upstreams.map((u) => u.stop()));
  upstreams = [];
  gw = undefined;
});

describe('smoke', () => {
  it('answers JSON and streams', async () => {
    const a = await FakeUpstream.start({ name: 'a' });
    upstreams.push(a);
    gw = await startGateway({ endpoints: [{ url: a.url, name: 'a', apiKey: 'sk-upstream-a' }] });
    const json = await chat(gw.url, gw.auth);
    expect(json.status).toBe(200);
    expect(json.json.choices[0].message.content).toBe('Hello from a.');
    expect(json.headers['x-gateway-endpoint']).toBe('a');
    const s = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toMatch(/text\/event-stream/);
    expect(streamedText(s.text)).toBe('Hello from a.');
    expect(sseData(s.text).at(-1)).toBe('[DONE]');
    expect(a.requests[0]!.headers.authorization).toBe('Bearer sk-upstream-a');
  });
});
