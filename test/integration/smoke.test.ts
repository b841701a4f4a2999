import { describe, expect, it } from 'vitest';
import { chat, sseData, streamBody, streamedText } from '../helpers/http.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();

describe('smoke', () => {
  it('answers JSON and streams', async () => {
    const a = await bed.upstream('a');
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a', apiKey: 'sk-upstream-a' }] });
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
