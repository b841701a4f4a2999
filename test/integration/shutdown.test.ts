import { once } from 'node:events';
import net from 'node:net';
import { Agent, request } from 'undici';
import { describe, expect, it, vi } from 'vitest';
import type { FakeUpstream } from '../helpers/fake-upstream.js';
import { sseData, streamBody, streamedText } from '../helpers/http.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';
import { CHILD_TIMEOUT_MS, freePort, spawnGateway, waitForOutput } from '../helpers/child-gateway.js';

const TEXT = 'one two three four five six seven eight nine ten';

const bed = useTestBed();

/** An undici Agent, destroyed after the test (before the gateway process is killed: it cannot wait for it). */
function newAgent(): Agent {
  const agent = new Agent();
  bed.onCleanup(() => agent.destroy());
  return agent;
}

/** A slow stream: a role chunk, one chunk per word and a finish chunk, 30 ms apart. */
async function slowUpstream(): Promise<FakeUpstream> {
  const upstream = await bed.upstream('slow');
  upstream.defaultBehavior = { type: 'sse', text: TEXT, delayMs: 30 };
  return upstream;
}

/** Starts a streaming request and resolves once the first chunk arrived, with a reader for the rest. */
async function startStream(baseUrl: string, dispatcher?: Agent) {
  const res = await request(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` },
    body: JSON.stringify(streamBody()),
    dispatcher,
  });
  expect(res.statusCode).toBe(200);
  const iterator = res.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await iterator.next();
  expect(first.done).toBe(false);
  let text = (first.value as Buffer).toString('utf8');
  return {
    /** Reads one more chunk. */
    next: async (): Promise<void> => {
      const r = await iterator.next();
      expect(r.done).toBe(false);
      text += (r.value as Buffer).toString('utf8');
    },
    rest: async (): Promise<string> => {
      for (let r = await iterator.next(); !r.done; r = await iterator.next())
        text += r.value.toString('utf8');
      return text;
    },
  };
}

/** Resolves with the connection error, or undefined if a TCP connection could be opened. */
function tryConnect(port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (err) => resolve(err));
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function expectIntactStream(body: string): void {
  expect(streamedText(body)).toBe(TEXT);
  expect(sseData(body).at(-1)).toBe('[DONE]');
  expect(body).not.toContain('"error"');
}

describe('graceful shutdown in process', () => {
  it('finishes an in-flight stream, refuses new connections and resolves after the stream ended', async () => {
    const upstream = await slowUpstream();
    const gw = await bed.gateway({ endpoints: [{ url: upstream.url, name: 'slow' }] });
    const port = Number(new URL(gw.url).port);
    const agent = newAgent();
    const stream = await startStream(gw.url, agent);

    const g = gw;
    let resolved = false;
    let accessLinesAtResolution = -1;
    const shutdown = g.gateway.shutdown(5_000).then(() => {
      resolved = true;
      accessLinesAtResolution = g.logs.filter(
        (l) => l.responseTime !== undefined && l.stream === true,
      ).length;
    });
    expect(gw.gateway.isShuttingDown).toBe(true);

    // Readiness during shutdown: 503, or no connection at all.
    const readiness = await request(`${gw.url}/health/readiness`, { dispatcher: new Agent() }).then(
      async (res) => ({ status: res.statusCode, body: await res.body.text() }),
      (err: NodeJS.ErrnoException) => ({ status: 0, body: err.code ?? err.message }),
    );
    if (readiness.status === 0) expect(readiness.body).toMatch(/ECONNREFUSED/);
    else expect(readiness.status).toBe(503);

    // Once the listener has closed (after taking what the kernel had accepted), connections are refused.
    await vi.waitFor(() => expect(g.logs.some((l) => l.msg === 'stopped listening')).toBe(true), {
      timeout: CHILD_TIMEOUT_MS,
      interval: 5,
    });
    const connectError = await tryConnect(port);
    expect(connectError?.code).toBe('ECONNREFUSED');

    // The stream keeps flowing while shutdown waits.
    await stream.next();
    expect(resolved).toBe(false);
    const body = await stream.rest();
    expectIntactStream(body);
    await shutdown;
    // The stream's access line (written when the response ended) existed when shutdown resolved.
    expect(accessLinesAtResolution).toBe(1);
    const access = g.logs.filter((l) => l.responseTime !== undefined && l.stream === true);
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({ res: { statusCode: 200 } });
  });
  it('a stream cut when the grace period runs out is logged as server_shutting_down, not against the endpoint', async () => {
    const upstream = await bed.upstream('slow');
    upstream.defaultBehavior = { type: 'sse', text: TEXT, delayMs: 400 };
    const gw = await bed.gateway({ endpoints: [{ url: upstream.url, name: 'slow' }] });
    const stream = await startStream(gw.url, newAgent());
    const failuresBefore = gw.gateway.registry.health.get('slow').failures;
    await gw.gateway.shutdown(50);
    const body = await stream.rest();
    expect(body).toContain('"code":"server_shutting_down"');
    expect(body).not.toContain('[DONE]');
    const health = gw.gateway.registry.health.get('slow');
    expect(health.failures).toBe(failuresBefore);
    expect(health.consecutiveFailures).toBe(0);
    expect(health.lastError).toBeUndefined();
    const logs = gw.logs;
    const access = logs.filter((l) => l.responseTime !== undefined && l.stream === true);
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({ errorCode: 'server_shutting_down' });
    // Nothing blames the upstream.
    expect(
      logs.filter((l) => l.level === 'error' || /upstream|attempt failed|ejected/i.test(String(l.msg))),
    ).toEqual([]);
  });
});

describe('requests that arrive during shutdown', () => {
  it('a request pipelined on a busy keep-alive connection is answered with connection: close', async () => {
    const upstream = await slowUpstream();
    const gw = await bed.gateway({ endpoints: [{ url: upstream.url, name: 'slow' }] });
    const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1');
    bed.onCleanup(() => socket.destroy());
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('utf8')));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const body = JSON.stringify(streamBody());
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer ${CLIENT_KEY}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await withTimeout(
      new Promise<void>((resolve) => {
        const check = () => {
          if (!received.includes('data:')) return;
          socket.off('data', check);
          resolve();
        };
        socket.on('data', check);
      }),
      CHILD_TIMEOUT_MS,
      'the first chunk',
    );
    const shutdown = gw.gateway.shutdown(5_000);
    // The connection is busy, so it stays open; a request sent on it now is the last one it carries.
    socket.write('GET /health HTTP/1.1\r\nhost: gw\r\n\r\n');
    await withTimeout(closed, CHILD_TIMEOUT_MS, 'the connection closing');
    await shutdown;
    const [, health] = received.split(/(?=HTTP\/1\.1 )/);
    expect(health).toMatch(/^HTTP\/1\.1 200/);
    expect(health).toMatch(/\r\nconnection: close\r\n/i);
    expectIntactStream(received.slice(0, received.indexOf(health!)));
  });
});

describe('the gateway process', () => {
  it('on SIGTERM past the grace period, a cut stream is logged as server_shutting_down and blames no endpoint', async () => {
    const upstream = await bed.upstream('slow');
    upstream.defaultBehavior = { type: 'sse', text: TEXT, delayMs: 500 };
    const port = await freePort();
    const proc = await spawnGateway(bed, {
      PORT: String(port),
      HOST: '127.0.0.1',
      API_KEY: CLIENT_KEY,
      ENDPOINTS: JSON.stringify([{ url: upstream.url, name: 'slow', models: ['test-model'] }]),
      SHUTDOWN_GRACE_MS: '200',
      LOG_LEVEL: 'debug',
    });
    await waitForOutput(proc, 'akash llm gateway listening');
    const stream = await startStream(`http://127.0.0.1:${port}`, newAgent());
    proc.proc.kill('SIGTERM');
    const body = await withTimeout(stream.rest(), CHILD_TIMEOUT_MS, 'the end of the stream');
    expect(body).toContain('"code":"server_shutting_down"');
    expect((await proc.exit).code).toBe(0);
    const lines = proc
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const access = lines.find((l) => l.responseTime !== undefined && l.stream === true);
    expect(access).toMatchObject({ level: 'warn', errorCode: 'server_shutting_down' });
    const blamed = lines.filter((l) => l.level === 'error' || /failed|ejected|upstream/i.test(String(l.msg)));
    expect(blamed).toEqual([]);
  });

  it('on SIGTERM finishes the in-flight stream and exits 0 within the grace period', async () => {
    const upstream = await slowUpstream();
    const port = await freePort();
    const proc = await spawnGateway(bed, {
      PORT: String(port),
      HOST: '127.0.0.1',
      API_KEY: CLIENT_KEY,
      ENDPOINTS: JSON.stringify([{ url: upstream.url, name: 'slow', models: ['test-model'] }]),
      SHUTDOWN_GRACE_MS: '5000',
      LOG_LEVEL: 'info',
    });
    await waitForOutput(proc, 'akash llm gateway listening');

    const agent = newAgent();
    const stream = await startStream(`http://127.0.0.1:${port}`, agent);
    const signalledAt = Date.now();
    expect(proc.proc.kill('SIGTERM')).toBe(true);
    const body = await withTimeout(stream.rest(), CHILD_TIMEOUT_MS, 'the end of the stream');
    expectIntactStream(body);

    const exit = await withTimeout(proc.exit, CHILD_TIMEOUT_MS, 'process exit');
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - signalledAt).toBeLessThan(5_000);
    expect(proc.stdout()).toContain('shutting down');
    expect(proc.stderr()).toBe('');
  });

  it('on SIGTERM every request whose connection was accepted gets an HTTP answer, none a reset', async () => {
    const upstream = await bed.upstream('a');
    const port = await freePort();
    const proc = await spawnGateway(bed, {
      PORT: String(port),
      HOST: '127.0.0.1',
      API_KEY: CLIENT_KEY,
      ENDPOINTS: JSON.stringify([{ url: upstream.url, name: 'a', models: ['test-model'] }]),
      SHUTDOWN_GRACE_MS: '5000',
    });
    await waitForOutput(proc, 'akash llm gateway listening');
    const body = JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }] });
    const requestText =
      `POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer ${CLIENT_KEY}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

    /** One connection: what it received, whether it connected, and how it ended. */
    const exchange = (connected: Promise<void>, socket: net.Socket) =>
      new Promise<{ connected: boolean; received: string; error?: string }>((resolve) => {
        let received = '';
        let wasConnected = false;
        void connected.then(() => (wasConnected = true));
        socket.on('data', (d: Buffer) => (received += d.toString('utf8')));
        socket.once('error', (err: NodeJS.ErrnoException) =>
          resolve({ connected: wasConnected, received, error: err.code }),
        );
        socket.once('close', () => resolve({ connected: wasConnected, received }));
      });

    // 60 connections accepted before the signal, whose requests arrive with it, and 40 more that
    // connect and send as the signal comes.
    const early = await Promise.all(
      Array.from({ length: 60 }, async () => {
        const socket = net.connect(port, '127.0.0.1');
        await once(socket, 'connect');
        return socket;
      }),
    );
    const results = early.map((socket) => exchange(Promise.resolve(), socket));
    for (const socket of early) socket.write(requestText);
    for (let i = 0; i < 40; i++) {
      const socket = net.connect(port, '127.0.0.1');
      const connected = once(socket, 'connect').then(() => undefined);
      void connected.then(
        () => socket.write(requestText),
        () => undefined,
      );
      results.push(exchange(connected, socket));
    }
    proc.proc.kill('SIGTERM');
    const outcomes = await withTimeout(Promise.all(results), CHILD_TIMEOUT_MS, 'every answer');
    for (const outcome of outcomes) {
      if (!outcome.connected) continue;
      expect(outcome.error, JSON.stringify(outcome)).toBeUndefined();
      expect(outcome.received).toMatch(/^HTTP\/1\.1 (200|503) /);
    }
    expect(outcomes.filter((o) => o.connected).length).toBeGreaterThanOrEqual(60);
    const exit = await withTimeout(proc.exit, CHILD_TIMEOUT_MS, 'process exit');
    expect(exit.code).toBe(0);
  });

  it('without ENDPOINTS or CONFIG_FILE exits 1 and points at `npm run demo`', async () => {
    const proc = await spawnGateway(bed, { API_KEY: CLIENT_KEY, PORT: String(await freePort()) });
    const exit = await withTimeout(proc.exit, CHILD_TIMEOUT_MS, 'process exit');
    expect(exit.code).toBe(1);
    expect(proc.stderr()).toContain('npm run demo');
    expect(proc.stderr()).toContain('ENDPOINTS');
    expect(proc.stdout()).not.toContain('listening');
  });
});
