/**
 * Issue: load-aware selection. Three endpoints of one tier, one of them slow and slowing down further as
 * requests pile up on it (a GPU batching too much). The same closed-loop load runs against the gateway
 * with ROUTING_STRATEGY=weighted and =least-outstanding; least-outstanding should cut p95 latency.
 *
 *   npm run bench:routing            (ROUTING_REQUESTS, ROUTING_CONCURRENCY to change the load)
 */
import { closeClient, closedLoop, timedChat } from './lib/client.js';
import { BENCH_KEY, startBenchGateway } from './lib/gateway.js';
import { ModelServer } from './lib/model-server.js';
import { seeded, summarize, table } from './lib/stats.js';

const REQUESTS = Number(process.env.ROUTING_REQUESTS ?? 600);
const CONCURRENCY = Number(process.env.ROUTING_CONCURRENCY ?? 24);

async function run(strategy: 'weighted' | 'least-outstanding') {
  const servers = await Promise.all([
    ModelServer.start({ name: 'fast-a', ttftMs: 30, chunks: 20, chunkDelayMs: 2, slowdownPerRequest: 0.05 }),
    ModelServer.start({ name: 'fast-b', ttftMs: 30, chunks: 20, chunkDelayMs: 2, slowdownPerRequest: 0.05 }),
    ModelServer.start({ name: 'slow', ttftMs: 150, chunks: 20, chunkDelayMs: 10, slowdownPerRequest: 0.25 }),
  ]);
  const gateway = await startBenchGateway(
    {
      ENDPOINTS: JSON.stringify(servers.map((s) => ({ name: s.name, url: s.url, models: ['bench-model'] }))),
      ROUTING_STRATEGY: strategy,
    },
    seeded(7),
  );
  try {
    // Warm-up: connections and EWMA state.
    await closedLoop(60, CONCURRENCY, () => timedChat(gateway.url, BENCH_KEY, true));
    for (const s of servers) s.requests = 0;
    const results = await closedLoop(REQUESTS, CONCURRENCY, () => timedChat(gateway.url, BENCH_KEY, true));
    const stats = summarize(results.map((r) => r.totalMs));
    const share = (name: string) =>
      (100 * results.filter((r) => r.endpoint === name).length) / results.length;
    return {
      strategy,
      ...stats,
      errors: results.filter((r) => !r.ok).length,
      slowShare: share('slow'),
    };
  } finally {
    await gateway.shutdown(1000);
    await Promise.all(servers.map((s) => s.stop()));
  }
}

const rows = [];
for (const strategy of ['weighted', 'least-outstanding'] as const) rows.push(await run(strategy));
await closeClient();
console.log(
  `\nRouting strategies: 3 endpoints (one slow, slowing further under load), ${REQUESTS} streams, ${CONCURRENCY} concurrent\n`,
);
console.log(
  table(
    ['strategy', 'p50 ms', 'p90 ms', 'p95 ms', 'p99 ms', 'max ms', 'errors', 'share on slow %'],
    rows.map((r) => [r.strategy, r.p50, r.p90, r.p95, r.p99, r.max, r.errors, r.slowShare]),
  ),
);
const [weighted, lo] = rows;
console.log(
  `\np95: least-outstanding ${lo!.p95.toFixed(0)} ms vs weighted ${weighted!.p95.toFixed(0)} ms (${((100 * (weighted!.p95 - lo!.p95)) / weighted!.p95).toFixed(0)}% lower)`,
);
