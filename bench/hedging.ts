/**
 * Issue: request hedging. Two endpoints of one tier; one of them sometimes (10%) takes 1.5 s for its
 * first token. The same load runs with hedging off, with a fixed 150 ms hedge delay, and with the pool's
 * observed p95; the table shows p50/p99 time to first byte and the extra upstream load hedging costs.
 *
 *   npm run bench:hedging            (HEDGE_REQUESTS, HEDGE_CONCURRENCY to change the load)
 */
import { closeClient, closedLoop, timedChat } from './lib/client.js';
import { BENCH_KEY, startBenchGateway } from './lib/gateway.js';
import { ModelServer } from './lib/model-server.js';
import { seeded, summarize, table } from './lib/stats.js';

const REQUESTS = Number(process.env.HEDGE_REQUESTS ?? 500);
const CONCURRENCY = Number(process.env.HEDGE_CONCURRENCY ?? 8);

async function run(label: string, hedge: Record<string, string>) {
  const random = seeded(42);
  const servers = await Promise.all([
    ModelServer.start({
      name: 'spiky',
      ttftMs: () => (random() < 0.1 ? 1500 : 40),
      chunks: 10,
      chunkDelayMs: 2,
    }),
    ModelServer.start({ name: 'steady', ttftMs: 50, chunks: 10, chunkDelayMs: 2 }),
  ]);
  const gateway = await startBenchGateway(
    {
      ENDPOINTS: JSON.stringify(servers.map((s) => ({ name: s.name, url: s.url, models: ['bench-model'] }))),
      ...hedge,
    },
    seeded(3),
  );
  try {
    await closedLoop(40, CONCURRENCY, () => timedChat(gateway.url, BENCH_KEY, true));
    for (const s of servers) s.requests = 0;
    const results = await closedLoop(REQUESTS, CONCURRENCY, () => timedChat(gateway.url, BENCH_KEY, true));
    const ttfb = summarize(results.filter((r) => r.ok).map((r) => r.ttfbMs));
    const upstream = servers.reduce((sum, s) => sum + s.requests, 0);
    return {
      label,
      ...ttfb,
      errors: results.filter((r) => !r.ok).length,
      load: (100 * (upstream - REQUESTS)) / REQUESTS,
    };
  } finally {
    await gateway.shutdown(1000);
    await Promise.all(servers.map((s) => s.stop()));
  }
}

const rows = [
  await run('off', {}),
  await run('fixed 150 ms', { HEDGE_DELAY_MS: '150', HEDGE_MODELS: 'bench-model' }),
  await run('p95 of the pool', { HEDGE_DELAY_MS: 'p95', HEDGE_MODELS: 'bench-model' }),
];
await closeClient();
console.log(
  `\nHedging: 2 endpoints, one with a 1.5 s first token 10% of the time; ${REQUESTS} streams, ${CONCURRENCY} concurrent\n`,
);
console.log(
  table(
    ['hedging', 'TTFB p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'extra upstream requests %'],
    rows.map((r) => [r.label, r.p50, r.p90, r.p99, r.max, r.errors, r.load]),
  ),
);
