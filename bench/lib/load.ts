import { streamEvents } from '../../src/demo/model-server.js';
import autocannon from 'autocannon';
import { Agent, Pool, request } from 'undici';
import { summarize } from './stats.js';

export const AUTH = { authorization: 'Bearer bench-key', 'content-type': 'application/json' };

/** The request headers with another client key (a virtual key's scenario). */
export function authWith(key: string | undefined): Record<string, string> {
  return key === undefined ? AUTH : { ...AUTH, authorization: `Bearer ${key}` };
}
export const JSON_BODY = JSON.stringify({
  model: 'bench-model',
  messages: [{ role: 'user', content: 'Say something short.' }],
});
export const STREAM_BODY = JSON.stringify({
  model: 'bench-model',
  stream: true,
  messages: [{ role: 'user', content: 'Stream please.' }],
});
/** Asks the benchmark upstream to pace its chunks like a GPU (see bench/servers/upstream.ts). */
export const PACED_STREAM_BODY = JSON.stringify({
  model: 'bench-model',
  stream: true,
  pace: true,
  messages: [{ role: 'user', content: 'Stream please.' }],
});

/** One request at a time over one keep-alive connection: latency without queueing, measured in µs. */
export async function sequential(
  url: string,
  count: number,
  key?: string,
): Promise<{ latenciesMs: number[]; errors: number }> {
  const headers = authWith(key);
  const pool = new Pool(url, { connections: 1, pipelining: 1 });
  const latenciesMs: number[] = [];
  let errors = 0;
  try {
    for (let i = 0; i < count; i++) {
      const started = process.hrtime.bigint();
      const res = await pool.request({
        method: 'POST',
        path: '/v1/chat/completions',
        headers,
        body: JSON_BODY,
      });
      await res.body.arrayBuffer();
      latenciesMs.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (res.statusCode !== 200) errors++;
    }
  } finally {
    await pool.close();
  }
  return { latenciesMs, errors };
}

export interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
}

/** autocannon: a closed loop over `connections`, or an open loop at `rate` requests per second. */
export async function cannon(
  url: string,
  options: { connections: number; durationS: number; rate?: number; key?: string },
): Promise<LoadResult> {
  const result = await autocannon({
    url: `${url}/v1/chat/completions`,
    method: 'POST',
    headers: authWith(options.key),
    body: JSON_BODY,
    connections: options.connections,
    duration: options.durationS,
    ...(options.rate ? { overallRate: options.rate } : {}),
  });
  return {
    requests: result.requests.total,
    rps: result.requests.average,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

export interface StreamResult {
  streams: number;
  ttfbP50: number;
  ttfbP99: number;
  totalP50: number;
  bad: number;
}

/**
 * `concurrency` clients streaming back to back for `durationMs` (or `count` streams in all). A stream is
 * good only if every chunk arrived intact and in order, followed by [DONE].
 */
export async function streams(
  url: string,
  options: {
    concurrency: number;
    durationMs?: number;
    count?: number;
    chunks: number;
    paced?: boolean;
    /**
     * Clients start this far apart in all (client i after i/concurrency of it), so that streams of equal
     * length begin spread out, as independent users' would, rather than all together in lockstep
     * (which makes time to first byte measure how fast a burst of `concurrency` requests is queued).
     */
    staggerMs?: number;
    /** A client key other than the static bench key (a virtual key's scenario). */
    key?: string;
  },
): Promise<StreamResult> {
  const headers = authWith(options.key);
  const agent = new Agent({ connections: options.concurrency + 8, keepAliveTimeout: 60_000 });
  const expected = expectedStream(options.chunks);
  const ttfbs: number[] = [];
  const totals: number[] = [];
  let bad = 0;
  let started = 0;
  const until = options.durationMs ? performance.now() + options.durationMs : Number.POSITIVE_INFINITY;
  const more = () => (options.count !== undefined ? started < options.count : performance.now() < until);
  const worker = async (_: unknown, i: number) => {
    const stagger = ((options.staggerMs ?? 0) * i) / options.concurrency;
    if (stagger > 0) await new Promise((resolve) => setTimeout(resolve, stagger));
    while (more()) {
      started++;
      const t0 = performance.now();
      try {
        const res = await request(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers,
          body: options.paced ? PACED_STREAM_BODY : STREAM_BODY,
          dispatcher: agent,
        });
        let body = '';
        let first = -1;
        for await (const chunk of res.body) {
          if (first < 0) first = performance.now() - t0;
          body += (chunk as Buffer).toString('utf8');
        }
        ttfbs.push(first);
        totals.push(performance.now() - t0);
        if (res.statusCode !== 200 || body !== expected) bad++;
      } catch {
        bad++;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  await agent.close();
  const t = summarize(ttfbs);
  return { streams: started, ttfbP50: t.p50, ttfbP99: t.p99, totalP50: summarize(totals).p50, bad };
}

/** The exact bytes the benchmark upstream streams: the shared model server's answer of `chunks` words. */
export function expectedStream(chunks: number): string {
  const text = Array.from({ length: chunks }, (_, i) => `tok${i}`).join(' ');
  return `${streamEvents('bench-model', text)
    .map((e) => `data: ${e}\n\n`)
    .join('')}data: [DONE]\n\n`;
}
