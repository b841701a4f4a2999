import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

describe('the x-gateway request extension', () => {
  const bed = useTestBed();

  async function start() {
    const a = await bed.upstream({ name: 'a', models: ['llama'] });
    const b = await bed.upstream({ name: 'b', models: ['llama'] });
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'gpu-a', priority: 1 },
        { url: b.url, name: 'gpu-b', priority: 2 },
      ],
    });
    const post = (extra: Record<string, unknown>) =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'x' }], ...extra }),
      });
    return { a, b, gw, post };
  }

  it('is taken out of the body before it goes upstream; everything else is forwarded', async () => {
    const { a, post } = await start();
    const res = await post({ temperature: 0.2, 'x-gateway': { cache: false, metadata: { run: 7 } } });
    expect(res.status).toBe(200);
    expect(a.requests[0]!.json).toEqual({
      model: 'llama',
      messages: [{ role: 'user', content: 'x' }],
      temperature: 0.2,
    });
  });

  it('a preferred endpoint is tried first when it serves the model', async () => {
    const { a, b, post } = await start();
    const res = await post({ 'x-gateway': { endpoint: 'gpu-b' } });
    expect(res.headers.get('x-gateway-endpoint')).toBe('gpu-b');
    expect(b.requests).toHaveLength(1);
    expect(a.requests).toHaveLength(0);
  });

  it('a timeout may only tighten the total: a hanging upstream ends in a 504 at once', async () => {
    const { a, post } = await start();
    a.defaultBehavior = { type: 'hang' };
    const started = Date.now();
    const res = await post({ 'x-gateway': { timeout: 0.3, endpoint: 'gpu-a' } });
    expect(res.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('metadata goes into the ledger record and the access line', async () => {
    const { gw } = await start();
    const sdk = new OpenAI({ apiKey: CLIENT_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    await sdk.chat.completions.create({
      model: 'llama',
      messages: [{ role: 'user', content: 'x' }],
      // @ts-expect-error: the gateway's own body field
      'x-gateway': { metadata: { project: 'alpha', run: 3 } },
    });
    await gw.gateway.ledger.flush();
    const [record] = await gw.gateway.records.recentUsage(1);
    expect(record!.metadata).toEqual({ project: 'alpha', run: 3 });
    const line = gw.logs.find(
      (l) => typeof l.msg === 'string' && l.msg.startsWith('POST /v1/chat/completions'),
    );
    expect(line?.metadata).toBe('{"project":"alpha","run":3}');
  });

  it('a malformed extension is a 400 naming the field', async () => {
    const { post } = await start();
    for (const [value, param] of [
      ['yes', 'x-gateway'],
      [[1], 'x-gateway'],
      [{ cache: 'no' }, 'x-gateway.cache'],
      [{ timeout: -1 }, 'x-gateway.timeout'],
      [{ timeout: 'soon' }, 'x-gateway.timeout'],
      [{ endpoint: 'nowhere' }, 'x-gateway.endpoint'],
      [{ metadata: 'x' }, 'x-gateway.metadata'],
      [{ retries: 3 }, 'x-gateway.retries'],
    ] as const) {
      const res = await post({ 'x-gateway': value });
      const body = (await res.json()) as { error: { param: string; message: string } };
      expect({ value, status: res.status, param: body.error.param }).toEqual({ value, status: 400, param });
    }
  });
});
