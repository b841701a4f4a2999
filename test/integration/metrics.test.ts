import { writeFile } from 'node:fs/promises';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { loadConfig, type ConfigError } from '../../src/config/load-config.js';
import { streamEvents } from '../helpers/fake-upstream.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed, type TestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-metrics-0123456789';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * The Prometheus text format, strictly: every sample belongs to a metric announced by `# HELP` and
 * `# TYPE` lines, label values are quoted and escaped, values are numbers.
 */
function parsePrometheus(text: string): Sample[] {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  // Values as Go's ParseFloat reads them (Prometheus's parser): NaN in any case.
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(meta[3]);
        types.set(meta[2]!, meta[3]!);
      } else helps.add(meta[2]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|[Nn][Aa][Nn]|[+-]Inf)( \d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3])
      for (const pair of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g))
        labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const name = m[1]!;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    expect(types.has(family), `# TYPE of ${name}`).toBe(true);
    expect(helps.has(family), `# HELP of ${name}`).toBe(true);
    samples.push({ name, labels, value: Number(m[4]) });
  }
  return samples;
}

/** A sample's value (0 when absent: a counter never incremented has no sample for those labels). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return found.reduce((sum, s) => sum + s.value, 0);
}

async function scrape(url: string, headers: Record<string, string> = {}): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

async function withConfig(bed: TestBed, yaml: string): Promise<Record<string, string>> {
  const dir = await bed.tempDir('gw-metrics-');
  await writeFile(`${dir}/gateway.yaml`, yaml);
  return { CONFIG_FILE: `${dir}/gateway.yaml` };
}

describe('GET /metrics', () => {
  const bed = useTestBed();

  it('requests, tokens, cost, durations, time to first token and attempts move by what the traffic was', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    upstream.defaultBehavior = { type: 'answer', text: 'one two three' };
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: await withConfig(bed, 'pricing:\n  llama: { inputPerMTok: 1000000, outputPerMTok: 2000000 }\n'),
    });
    const before = await scrape(gw.url);
    expect(valueOf(before, 'llm_gateway_requests_total')).toBe(0);
    // Default process metrics are there too.
    expect(before.some((s) => s.name === 'process_cpu_user_seconds_total')).toBe(true);
    expect(before.some((s) => s.name === 'nodejs_eventloop_lag_seconds')).toBe(true);

    const sdk = new OpenAI({ apiKey: CLIENT_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    for (let i = 0; i < 2; i++)
      await sdk.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'x' }] });
    const stream = await sdk.chat.completions.create({
      model: 'llama',
      stream: true,
      messages: [{ role: 'user', content: 'x' }],
    });
    for await (const _chunk of stream) void _chunk;
    await expect(
      sdk.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toThrow();

    const after = await scrape(gw.url);
    expect(valueOf(after, 'llm_gateway_requests_total', { model: 'llama', status: '200' })).toBe(3);
    // A model the gateway does not know is `unknown`: clients cannot add label values.
    expect(valueOf(after, 'llm_gateway_requests_total', { model: 'unknown', status: '404' })).toBe(1);
    expect(after.some((s) => s.labels.model === 'no-such-model')).toBe(false);
    // JSON answers: 5 prompt + 3 completion tokens each; the stream: the usage chunk the gateway asked
    // for (50 + 7).
    expect(valueOf(after, 'llm_gateway_tokens_total', { model: 'llama', type: 'prompt' })).toBe(5 + 5 + 50);
    expect(valueOf(after, 'llm_gateway_tokens_total', { model: 'llama', type: 'completion' })).toBe(
      3 + 3 + 7,
    );
    expect(valueOf(after, 'llm_gateway_cost_total', { model: 'llama' })).toBeCloseTo(
      (60 * 1 + 13 * 2) / 1, // per million tokens at 1e6 and 2e6: one unit per token
      6,
    );
    expect(valueOf(after, 'llm_gateway_request_duration_seconds_count')).toBe(4);
    expect(valueOf(after, 'llm_gateway_overhead_seconds_count')).toBe(4);
    // Time to first token: streams only, by the endpoint that answered.
    expect(valueOf(after, 'llm_gateway_time_to_first_token_seconds_count')).toBe(1);
    expect(valueOf(after, 'llm_gateway_time_to_first_token_seconds_count', { endpoint: 'gpu' })).toBe(1);
    expect(
      valueOf(after, 'llm_gateway_time_to_first_token_seconds_bucket', { endpoint: 'gpu', le: '+Inf' }),
    ).toBe(1);
    const overheadSum = valueOf(after, 'llm_gateway_overhead_seconds_sum');
    const durationSum = valueOf(after, 'llm_gateway_request_duration_seconds_sum');
    expect(overheadSum).toBeGreaterThan(0);
    expect(overheadSum).toBeLessThan(durationSum);
    expect(
      valueOf(after, 'llm_gateway_provider_requests_total', {
        provider: 'openai-compatible',
        endpoint: 'gpu',
        outcome: 'success',
      }),
    ).toBe(3);
    expect(valueOf(after, 'llm_gateway_retries_total')).toBe(0);
    expect(valueOf(after, 'llm_gateway_endpoint_up', { endpoint: 'gpu' })).toBe(1);
    expect(valueOf(after, 'llm_gateway_endpoint_inflight', { endpoint: 'gpu' })).toBe(0);
    // Histogram buckets are cumulative and end with +Inf = count.
    const buckets = after.filter((s) => s.name === 'llm_gateway_request_duration_seconds_bucket');
    expect(buckets.at(-1)).toMatchObject({ labels: { le: '+Inf' }, value: 4 });
    for (let i = 1; i < buckets.length; i++)
      expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
  });

  it('failover, continuation and hedging: attempts by outcome, retries, continuations, hedges', async () => {
    const a = await bed.upstream({ name: 'a', models: ['llama'] });
    const b = await bed.upstream({ name: 'b', models: ['llama'] });
    b.defaultBehavior = { type: 'answer', text: 'the rest of it all' };
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a', priority: 1 },
        { url: b.url, name: 'b', priority: 2 },
      ],
      env: { HEDGE_DELAY_MS: '100' },
    });
    const post = (body: object) =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...gw.auth, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'x' }], ...body }),
      });
    // 1. a answers 503: failover to b.
    a.script({ type: 'status', status: 503, body: { error: { message: 'busy' } } });
    expect((await (await post({})).json()) as object).toHaveProperty('choices');
    // 2. a's stream breaks mid-answer: continued on b.
    a.script({ type: 'sse', events: streamEvents('llama', 'the rest of it all').slice(0, 3), then: 'reset' });
    expect(await (await post({ stream: true })).text()).toContain('[DONE]');
    // 3. a is slow to its first token: b is raced after 100 ms and wins.
    a.script({ type: 'answer', text: 'slow', firstTokenMs: 2_000 });
    expect((await post({ stream: true })).status).toBe(200);

    const m = await scrape(gw.url);
    const attempts = (endpoint: string, outcome: string) =>
      valueOf(m, 'llm_gateway_provider_requests_total', { endpoint, outcome });
    expect(attempts('a', 'status_5xx')).toBe(1);
    expect(attempts('a', 'stream_error')).toBe(1);
    expect(attempts('a', 'cancelled')).toBe(1);
    expect(attempts('b', 'success')).toBe(3);
    expect(valueOf(m, 'llm_gateway_retries_total')).toBe(3);
    expect(valueOf(m, 'llm_gateway_continuations_total')).toBe(1);
    expect(valueOf(m, 'llm_gateway_hedges_total')).toBe(1);
  });

  it('refusals by a limit count by scope; cache hits and misses count', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { ...(await withConfig(bed, 'limits:\n  global: { rpm: 3 }\n')), CACHE: 'memory' },
    });
    const post = () =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...gw.auth, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'same' }] }),
      });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await post();
      statuses.push(res.status);
      await res.text();
      if (i === 0) await expect.poll(() => gw.gateway.cache!.stored).toBe(1);
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    const m = await scrape(gw.url);
    expect(valueOf(m, 'llm_gateway_rate_limited_total', { scope: 'global' })).toBe(1);
    expect(valueOf(m, 'llm_gateway_cache_misses_total')).toBe(1);
    expect(valueOf(m, 'llm_gateway_cache_hits_total')).toBe(2);
    expect(valueOf(m, 'llm_gateway_requests_total', { model: 'llama', status: '429' })).toBe(1);
  });

  it('an endpoint that is down is 0 in llm_gateway_endpoint_up; GET /ready is the readiness check', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const gw = await bed.gateway({
      endpoints: [
        { url: upstream.url, name: 'gpu' },
        { url: 'http://127.0.0.1:9', name: 'gone', models: ['llama'] },
      ],
    });
    const m = await scrape(gw.url);
    expect(valueOf(m, 'llm_gateway_endpoint_up', { endpoint: 'gpu' })).toBe(1);
    expect(valueOf(m, 'llm_gateway_endpoint_up', { endpoint: 'gone' })).toBe(0);
    const ready = await fetch(`${gw.url}/ready`);
    const readiness = await fetch(`${gw.url}/health/readiness`);
    expect(ready.status).toBe(readiness.status);
    expect(((await ready.json()) as { status: string }).status).toBe(
      ((await readiness.json()) as { status: string }).status,
    );
  });

  it('METRICS_AUTH=admin: the admin key is needed; without ADMIN_API_KEY it is a start-up error', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { METRICS_AUTH: 'admin', ADMIN_API_KEY: ADMIN },
    });
    expect((await fetch(`${gw.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${gw.url}/metrics`, { headers: gw.auth })).status).toBe(401);
    await scrape(gw.url, { authorization: `Bearer ${ADMIN}` });
    expect((await fetch(`${gw.url}/metrics`, { method: 'POST' })).status).toBe(405);
    let problems: readonly string[] = [];
    try {
      loadConfig({
        env: {
          API_KEY: CLIENT_KEY,
          ENDPOINTS: `[{"url":"${upstream.url}"}]`,
          HOST: '127.0.0.1',
          METRICS_AUTH: 'admin',
        },
      });
    } catch (err) {
      problems = (err as ConfigError).problems;
    }
    expect(problems.join('\n')).toContain('METRICS_AUTH=admin needs ADMIN_API_KEY');
  });
});
