import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/observability/logger.js';
import { CHILD_TIMEOUT_MS, freePort, spawnGateway, waitForOutput } from '../helpers/child-gateway.js';
import { chat, streamBody, streamedText } from '../helpers/http.js';
import { CLIENT_KEY, type TestGateway } from '../helpers/start-gateway.js';
import { useTestBed } from '../helpers/test-bed.js';

const UPSTREAM_KEY_A = 'sk-upstream-secret-123';
const UPSTREAM_KEY_B = 'sk-upstream-secret-456';
const WRONG_KEY = 'sk-wrong-client-key-987';

const bed = useTestBed();

type Line = Record<string, unknown> & { req?: { id?: string }; res?: { statusCode?: number } };

/** The access lines (one per response) of the request with this id. */
function accessLines(g: TestGateway, id: string): Line[] {
  return (g.logs as Line[]).filter((l) => l.responseTime !== undefined && l.req?.id === id);
}

function headerText(headers: Record<string, string | string[] | undefined>): string {
  return Object.entries(headers)
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`)
    .join('\n');
}

describe('structured logs', () => {
  it('writes exactly one access line per request and never a secret', async () => {
    const a = await bed.upstream('a');
    const b = await bed.upstream('b');
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a', apiKey: UPSTREAM_KEY_A, priority: 1 },
        { url: b.url, name: 'b', apiKey: UPSTREAM_KEY_B, priority: 2 },
      ],
    });
    const seen: string[] = [];
    const record = (r: { text: string; headers: Record<string, string | string[] | undefined> }) =>
      seen.push(r.text, headerText(r.headers));

    // 1. A successful JSON request.
    const json = await chat(gw.url, gw.auth);
    record(json);
    expect(json.status).toBe(200);
    const jsonId = String(json.headers['x-request-id']);
    const [jsonLine, ...moreJson] = accessLines(gw, jsonId);
    expect(moreJson).toHaveLength(0);
    expect(jsonLine).toMatchObject({
      model: 'test-model',
      endpoint: 'a',
      attempts: 1,
      res: { statusCode: 200 },
    });
    expect(jsonLine!.ttfbMs).toEqual(expect.any(Number));
    expect(jsonLine!.responseTime).toEqual(expect.any(Number));

    // 2. A streaming request.
    const stream = await chat(gw.url, gw.auth, { body: streamBody() });
    record(stream);
    expect(streamedText(stream.text)).toBe('Hello from a.');
    const streamLines = accessLines(gw, String(stream.headers['x-request-id']));
    expect(streamLines).toHaveLength(1);
    expect(streamLines[0]).toMatchObject({
      model: 'test-model',
      stream: true,
      endpoint: 'a',
      attempts: 1,
      res: { statusCode: 200 },
    });
    expect(streamLines[0]!.ttfbMs).toEqual(expect.any(Number));
    expect(streamLines[0]!.responseTime).toEqual(expect.any(Number));

    // 3. An upstream failure that fails over to the next tier.
    a.script({ type: 'status', status: 500 });
    const failover = await chat(gw.url, gw.auth);
    record(failover);
    expect(failover.status).toBe(200);
    expect(
      (failover.json as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content,
    ).toBe('Hello from b.');
    const failoverLines = accessLines(gw, String(failover.headers['x-request-id']));
    expect(failoverLines).toHaveLength(1);
    expect(failoverLines[0]).toMatchObject({
      model: 'test-model',
      endpoint: 'b',
      attempts: 2,
      res: { statusCode: 200 },
    });
    expect(failoverLines[0]!.ttfbMs).toEqual(expect.any(Number));

    // 4. A wrong client key.
    const denied = await chat(gw.url, { authorization: `Bearer ${WRONG_KEY}` });
    record(denied);
    expect(denied.status).toBe(401);
    const deniedLines = accessLines(gw, String(denied.headers['x-request-id']));
    expect(deniedLines).toHaveLength(1);
    // The operator reads why: the client's code is invalid_api_key whatever the reason.
    expect(deniedLines[0]).toMatchObject({
      res: { statusCode: 401 },
      errorCode: 'invalid_api_key',
      authFailure: 'unknown_key',
    });
    const missing = await chat(gw.url, {});
    record(missing);
    expect(accessLines(gw, String(missing.headers['x-request-id']))[0]).toMatchObject({
      errorCode: 'missing_api_key',
      authFailure: 'missing',
    });
    expect(deniedLines[0]!.responseTime).toEqual(expect.any(Number));

    // 5. A client-chosen request id is used in the log, echoed, and sent upstream.
    const mine = await chat(gw.url, gw.auth, { headers: { 'x-request-id': 'my-req-1' } });
    record(mine);
    expect(mine.status).toBe(200);
    expect(mine.headers['x-request-id']).toBe('my-req-1');
    const mineLines = accessLines(gw, 'my-req-1');
    expect(mineLines).toHaveLength(1);
    expect(mineLines[0]).toMatchObject({
      model: 'test-model',
      endpoint: 'a',
      attempts: 1,
      res: { statusCode: 200 },
    });
    expect(a.requests.at(-1)!.headers['x-request-id']).toBe('my-req-1');

    // One access line per request in total, all with distinct ids.
    const ids = (gw.logs as Line[]).filter((l) => l.responseTime !== undefined).map((l) => l.req?.id);
    expect(ids).toHaveLength(6);
    expect(new Set(ids).size).toBe(6);

    // No secret anywhere: logs, response bodies, response headers.
    const raw = gw.rawLogs();
    const responses = seen.join('\n');
    for (const secret of [CLIENT_KEY, WRONG_KEY, UPSTREAM_KEY_A, UPSTREAM_KEY_B]) {
      expect(raw).not.toContain(secret);
      expect(responses).not.toContain(secret);
    }
    // The upstreams did get their own keys, so the check above is meaningful.
    expect(a.requests[0]!.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY_A}`);
    expect(b.requests[0]!.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY_B}`);
  });

  it('a stream that fails after heartbeats sent its 200 is logged at error, and no alias line without an alias', async () => {
    const slowFail = { type: 'custom' as const, handle: () => undefined };
    const a = await bed.upstream('a', slowFail);
    const gw = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a' }],
      env: { HEARTBEAT_INTERVAL_MS: '20', FIRST_BYTE_TIMEOUT_MS: '150', MAX_ATTEMPTS: '1' },
    });
    const res = await chat(gw.url, gw.auth, { body: streamBody(), headers: { 'x-request-id': 'hb-fail-1' } });
    expect(res.status).toBe(200);
    expect(res.text).toContain(': keep-alive');
    expect(res.text).toContain('"error"');
    const [line] = accessLines(gw, 'hb-fail-1');
    expect(line).toMatchObject({ level: 'error', errorCode: 'first_byte_timeout' });
    expect(gw.logs.some((l) => String(l.msg).includes('next model of the alias'))).toBe(false);
  });

  it('never writes megabytes for a client: a 5 MB model is a 400, long paths and ids are cut', async () => {
    const a = await bed.upstream('a');
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    const huge = 'm'.repeat(5 * 1024 * 1024);
    for (let i = 0; i < 3; i++) {
      const res = await chat(gw.url, gw.auth, {
        body: { model: huge, messages: [{ role: 'user', content: 'x' }] },
      });
      expect(res.status).toBe(400);
      expect(res.json.error.message).toMatch(/at most 256 characters/);
      expect(res.text.length).toBeLessThan(1_000);
    }
    const longPath = `/v1/${'p'.repeat(8_000)}`;
    const notFound = await request(`${gw.url}${longPath}`, { headers: gw.auth });
    const text = await notFound.body.text();
    expect(notFound.statusCode).toBe(404);
    expect(text.length).toBeLessThan(1_000);
    const model = await request(`${gw.url}/v1/models/${'q'.repeat(8_000)}`, { headers: gw.auth });
    expect((await model.body.text()).length).toBeLessThan(1_000);
    expect(gw.rawLogs().length).toBeLessThan(20_000);
    expect(a.requests).toHaveLength(0);
  });

  it('redacts a key sent in a query string', async () => {
    const a = await bed.upstream('a');
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a' }] });
    await request(`${gw.url}/v1/models?api_key=${CLIENT_KEY}&x=1`, { headers: gw.auth }).then((r) =>
      r.body.dump(),
    );
    await request(`${gw.url}/v1/models?token=sk-in-query-2`).then((r) => r.body.dump());
    // A JWT as ?jwt=, and one pasted anywhere else in the URL.
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLXBhcnQ';
    await request(`${gw.url}/v1/models?jwt=${jwt}`).then((r) => r.body.dump());
    await request(`${gw.url}/v1/models/${jwt}?x=${jwt}`).then((r) => r.body.dump());
    await nextTurn();
    expect(gw.rawLogs()).not.toContain('c2lnbmF0dXJlLXBhcnQ');
    expect(gw.rawLogs()).toContain('jwt=[redacted]');
    const logs = gw.rawLogs();
    expect(logs).not.toContain(CLIENT_KEY);
    expect(logs).not.toContain('sk-in-query-2');
    expect(logs).toContain('api_key=[redacted]&x=1');
  });

  it('every line a request causes carries its request id: attempt failures, the ejection, the access line', async () => {
    const fail = { type: 'status' as const, status: 500 };
    const a = await bed.upstream('a', fail, fail, fail);
    const b = await bed.upstream('b');
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a', priority: 1 },
        { url: b.url, name: 'b', priority: 2 },
      ],
      env: { MAX_ATTEMPTS: '3' },
      random: () => 0,
    });
    // Three failures in a row on a: the third request's failure ejects it.
    for (const id of ['rid-1', 'rid-2']) await chat(gw.url, gw.auth, { headers: { 'x-request-id': id } });
    const res = await chat(gw.url, gw.auth, { headers: { 'x-request-id': 'rid-3' } });
    expect(res.status).toBe(200);
    await nextTurn();
    const lines = gw.logs.filter((l) => l.reqId === 'rid-3');
    expect(lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        'attempt failed, trying next',
        'endpoint ejected',
        'POST /v1/chat/completions 200',
      ]),
    );
    const access = accessLines(gw, 'rid-3');
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({ reqId: 'rid-3', endpoint: 'b', attempts: 2 });
  });

  it('does not leak upstream keys when every upstream rejects the gateway credentials', async () => {
    const a = await bed.upstream('a');
    a.defaultBehavior = {
      type: 'status',
      status: 401,
      body: { error: { message: `Incorrect API key provided: ${UPSTREAM_KEY_A}` } },
    };
    const gw = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a', apiKey: UPSTREAM_KEY_A, models: ['test-model'] }],
    });
    const res = await chat(gw.url, gw.auth);
    expect(res.status).toBe(502);
    expect.soft(res.text).not.toContain(UPSTREAM_KEY_A);
    expect(headerText(res.headers)).not.toContain(UPSTREAM_KEY_A);
    expect.soft(gw.rawLogs()).not.toContain(UPSTREAM_KEY_A);
    expect(accessLines(gw, String(res.headers['x-request-id']))).toHaveLength(1);
  });
});

describe('file logging', () => {
  async function readUntil(file: string, predicate: (text: string) => boolean): Promise<string> {
    let text = '';
    for (let i = 0; i < 50; i++) {
      text = await readFile(file, 'utf8').catch(() => '');
      if (predicate(text)) return text;
      await nextTurn();
    }
    return text;
  }

  it('FILE_LOGGING=true with LOG_FILE writes redacted JSON lines to that file', async () => {
    const tempDir = await bed.tempDir('gateway-log-');
    const logFile = path.join(tempDir, 'nested', 'gateway.log');
    const config = loadConfig({
      env: {
        API_KEY: CLIENT_KEY,
        ENDPOINTS: JSON.stringify([{ url: 'http://127.0.0.1:9', models: ['m'] }]),
        FILE_LOGGING: 'true',
        LOG_FILE: logFile,
      },
    });
    expect(config.logging).toMatchObject({ file: true, filePath: logFile, level: 'info' });

    // Exactly as main.ts builds it.
    const logger = createLogger({
      level: config.logging.level,
      file: config.logging.file ? { path: config.logging.filePath } : undefined,
    });
    logger.info({ marker: 'file-logging-test' }, 'hello file');
    logger.info({ apiKey: 'sk-x', authorization: 'Bearer sk-y' }, 'secrets');
    logger.debug('below the level');
    logger.flush();

    const text = await readUntil(logFile, (t) => t.includes('"msg":"secrets"'));
    const lines = text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.msg === 'hello file')).toMatchObject({
      level: 'info',
      marker: 'file-logging-test',
      service: 'akash-llm-gateway',
    });
    expect(lines.find((l) => l.msg === 'secrets')).toMatchObject({
      apiKey: '[redacted]',
      authorization: '[redacted]',
    });
    expect(text).not.toContain('sk-x');
    expect(text).not.toContain('sk-y');
    expect(text).not.toContain('below the level');
  });

  it('a log file that fails to take writes (disk full) is reported, dropped, and does not stop the gateway or its exit', async () => {
    // /dev/full: opens, and every write fails with ENOSPC.
    expect(existsSync('/dev/full')).toBe(true);
    const a = await bed.upstream('a');
    const port = await freePort();
    const child = await spawnGateway(bed, {
      API_KEY: CLIENT_KEY,
      ENDPOINTS: JSON.stringify([{ name: 'a', url: a.url, models: ['test-model'] }]),
      PORT: String(port),
      HOST: '127.0.0.1',
      FILE_LOGGING: 'true',
      LOG_FILE: '/dev/full',
    });
    await waitForOutput(child, 'listening');
    for (let i = 0; i < 3; i++) {
      const res = await request(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(res.statusCode).toBe(200);
      await res.body.text();
    }
    await expect
      .poll(() => child.stderr(), { timeout: CHILD_TIMEOUT_MS })
      .toContain('log write failed (/dev/full)');
    // stdout goes on logging.
    await waitForOutput(child, '"url":"/v1/chat/completions"');
    const signalledAt = Date.now();
    child.proc.kill('SIGTERM');
    const exit = await child.exit;
    expect(exit.code).toBe(0);
    expect(exit.at - signalledAt).toBeLessThan(CHILD_TIMEOUT_MS);
    expect(child.stderr().match(/log write failed/g)).toHaveLength(1);
    expect(child.stdout()).toContain('"msg":"stopped"');
  });
});
