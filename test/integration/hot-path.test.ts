import { once } from 'node:events';
import zlib from 'node:zlib';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { streamEvents, type Behavior } from '../helpers/fake-upstream.js';
import { chat, sseData, streamBody, streamedText } from '../helpers/http.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();
const BODY = JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'héllo' }] });

async function setup(...script: Behavior[]) {
  const a = await bed.upstream('a', ...script);
  const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a', models: ['test-model'] }] });
  return { a, gw };
}

async function post(url: string, headers: Record<string, string>, body: Buffer | string) {
  const res = await request(`${url}/v1/chat/completions`, { method: 'POST', headers, body });
  return { status: res.statusCode, json: (await res.body.json()) as any };
}

describe('request bodies', () => {
  it.each([
    ['gzip', zlib.gzipSync],
    ['deflate', zlib.deflateSync],
    ['br', zlib.brotliCompressSync],
  ] as const)('a %s-encoded body is decoded and forwarded as identity', async (encoding, encode) => {
    const { a, gw } = await setup();
    const res = await post(
      gw.url,
      { ...gw.auth, 'content-type': 'application/json', 'content-encoding': encoding },
      encode(Buffer.from(BODY)),
    );
    expect(res.status).toBe(200);
    expect(a.requests[0]!.body.toString('utf8')).toBe(BODY);
    expect(a.requests[0]!.headers['content-encoding']).toBeUndefined();
  });

  it('an unknown content-encoding gets a 415, a corrupt one a 400', async () => {
    const { a, gw } = await setup();
    const unknown = await post(
      gw.url,
      { ...gw.auth, 'content-type': 'application/json', 'content-encoding': 'zstd' },
      BODY,
    );
    expect(unknown.status).toBe(415);
    expect(unknown.json.error.code).toBe('unsupported_encoding');
    const corrupt = await post(
      gw.url,
      { ...gw.auth, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      Buffer.from('not gzip at all'),
    );
    expect(corrupt.status).toBe(400);
    expect(corrupt.json.error.code).toBe('invalid_body_encoding');
    expect(a.requests).toHaveLength(0);
  });

  it('the limit applies to the decoded size (a small gzip bomb is refused)', async () => {
    const a = await bed.upstream('a');
    const gw = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a', models: ['test-model'] }],
      env: { BODY_LIMIT: '64kb' },
    });
    const bomb = zlib.gzipSync(Buffer.alloc(1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const res = await post(
      gw.url,
      { ...gw.auth, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      bomb,
    );
    expect(res.status).toBe(413);
    expect(a.requests).toHaveLength(0);
  });
});

describe('stream endings', () => {
  it('a last line `data: [DONE]` without a line break, then the end of the response, completes the stream', async () => {
    const events = streamEvents('test-model', 'Short answer.');
    const { gw } = await setup({
      type: 'custom',
      handle: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`${events.map((e) => `data: ${e}\n\n`).join('')}data: [DONE]`);
      },
    });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe('Short answer.');
    expect(sseData(res.text).at(-1)).toBe('[DONE]');
    expect(res.text).not.toContain('"error"');
  });

  it('keeps the upstream connection when the response ends a moment after [DONE]', async () => {
    const events = streamEvents('test-model', 'Again.');
    const lateEnd: Behavior = {
      type: 'custom',
      handle: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`${events.map((e) => `data: ${e}\n\n`).join('')}data: [DONE]\n\n`, () =>
          setImmediate(() => res.end()),
        );
      },
    };
    const { a, gw } = await setup(lateEnd, lateEnd, lateEnd);
    for (let i = 0; i < 3; i++) {
      const res = await chat(gw.url, gw.auth, { body: streamBody() });
      expect(streamedText(res.text)).toBe('Again.');
    }
    expect(a.requests).toHaveLength(3);
    expect(a.connections).toBe(1);
  });

  it('cuts an upstream that keeps its response open after [DONE], once the client has its answer', async () => {
    const events = streamEvents('test-model', 'Done but open.');
    const { a, gw } = await setup({
      type: 'custom',
      handle: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`${events.map((e) => `data: ${e}\n\n`).join('')}data: [DONE]\n\n`);
      },
    });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe('Done but open.');
    // The gateway lets the response end by itself for a moment, then closes the connection.
    await a.requests[0]!.closed;
    expect(a.openSockets).toBe(0);
  });
});

describe('backpressure', () => {
  it('a client that reads slowly slows the upstream down instead of filling the gateway’s memory', async () => {
    const piece = 'x'.repeat(8 * 1024);
    // 48 MB: more than the socket buffers on both sides of the gateway can hold (several MB each).
    const chunks = 6000;
    let sawBackpressure = false;
    let finished = false;
    const { gw } = await setup({
      type: 'custom',
      handle: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let i = 0;
        const next = () => {
          while (i < chunks) {
            const ok = res.write(`data: {"choices":[{"index":0,"delta":{"content":"${piece}"}}]}\n\n`);
            i++;
            if (!ok) {
              sawBackpressure = true;
              res.once('drain', next);
              return;
            }
          }
          finished = true;
          res.end('data: [DONE]\n\n');
        };
        next();
      },
    });
    const res = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...gw.auth, 'content-type': 'application/json' },
      body: JSON.stringify(streamBody()),
    });
    // Read nothing until the upstream has been made to wait, then everything.
    const body = res.body;
    body.pause();
    while (!sawBackpressure && !finished) await new Promise((resolve) => setImmediate(resolve));
    let bytes = 0;
    let tail = '';
    body.on('data', (c: Buffer) => {
      bytes += c.length;
      tail = (tail + c.toString('utf8')).slice(-32);
    });
    body.resume();
    await once(body, 'end');
    expect(sawBackpressure).toBe(true);
    expect(bytes).toBeGreaterThan(chunks * piece.length);
    expect(tail.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });
});
