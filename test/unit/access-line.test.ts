import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { accessLineWriter, IsoClock } from '../../src/observability/access-line.js';
import { createLogger } from '../../src/observability/logger.js';

function capture(level = 'info') {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const logger = createLogger({ level, stream });
  return { logger, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

const line = {
  id: 'req-1',
  method: 'POST',
  url: '/v1/chat/completions',
  statusCode: 200,
  responseTimeMs: 12.34,
  fields: { model: 'm', stream: true, attempts: 2, endpoint: undefined },
  msg: 'POST /v1/chat/completions 200',
};

describe('access lines', () => {
  it('have the shape of the logger’s own lines: level, ISO time, service, request, fields, message', () => {
    const { logger, lines } = capture();
    const write = accessLineWriter(logger, () => Date.UTC(2026, 11, 1, 22, 5, 23, 7));
    logger.info({ marker: 1 }, 'a pino line');
    write('info', line);
    const [pinoLine, accessLine] = lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(Object.keys(accessLine!).slice(0, 3)).toEqual(Object.keys(pinoLine!).slice(0, 3));
    expect(accessLine).toEqual({
      level: 'info',
      time: '2026-12-01T22:05:23.007Z',
      service: 'akash-llm-gateway',
      req: { id: 'req-1', method: 'POST', url: '/v1/chat/completions' },
      res: { statusCode: 200 },
      responseTime: 12.34,
      model: 'm',
      stream: true,
      attempts: 2,
      msg: 'POST /v1/chat/completions 200',
    });
  });

  it('stay valid JSON whatever the client put in the path or the model name', () => {
    const { logger, lines } = capture();
    const write = accessLineWriter(logger);
    const url = '/v1/chat/completions?x="quoted"\\back\u0001';
    write('warn', { ...line, url, fields: { model: 'modèle "🙂"\n' }, msg: `POST ${url} 404` });
    const parsed = JSON.parse(lines()[0]!) as { req: { url: string }; model: string; level: string };
    expect(parsed.req.url).toBe(url);
    expect(parsed.model).toBe('modèle "🙂"\n');
    expect(parsed.level).toBe('warn');
  });

  it('write numbers as JSON does (a non-finite one as null) and booleans as they are', () => {
    const { logger, lines } = capture();
    const write = accessLineWriter(logger);
    write('info', {
      ...line,
      responseTimeMs: Number.NaN,
      fields: { ttfbMs: 0.125, attempts: Infinity, stream: false, endpoint: 'a\\b' },
    });
    const text = lines()[0]!;
    expect(JSON.parse(text)).toMatchObject({
      responseTime: null,
      ttfbMs: 0.125,
      attempts: null,
      stream: false,
      endpoint: 'a\\b',
    });
    expect(Object.keys(JSON.parse(text) as object).slice(-5)).toEqual([
      'ttfbMs',
      'attempts',
      'stream',
      'endpoint',
      'msg',
    ]);
  });

  it('follow the logger’s level, also after it changes', () => {
    const { logger, lines } = capture('warn');
    const write = accessLineWriter(logger);
    write('info', line);
    expect(lines()).toHaveLength(0);
    logger.level = 'debug';
    write('debug', line);
    write('info', line);
    expect(lines()).toHaveLength(2);
  });
});

describe('IsoClock', () => {
  it('formats exactly like Date.toISOString, across seconds, days and years', () => {
    let now = Date.UTC(2026, 11, 31, 23, 59, 58, 990);
    const clock = new IsoClock(() => now);
    for (let i = 0; i < 3000; i++) {
      expect(clock.now()).toBe(new Date(now).toISOString());
      now += 1 + (i % 7);
    }
  });
});
