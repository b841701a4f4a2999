/**
 * `npm run bench:cache-memory`: the response cache's memory, under load. Two gateways (cache off, and
 * CACHE=memory with CACHE_MAX_BYTES, 64mb by default) each take CACHE_BENCH_S seconds (40) of requests
 * whose bodies are all different (50 connections), so that the cache fills to its bound and then
 * evicts. Answers are ~2.5 KB (ANSWER_WORDS 400). Reports peak RSS of each, the cache's own count of
 * its bytes, and checks that the cache costs no more than its bound: peak RSS with the cache full ≤
 * peak RSS without it + CACHE_MAX_BYTES.
 */
import autocannon from 'autocannon';
import { buildForBench, HAS_TASKSET, peakRssMb, pinSelf, resetPeakRss, startProcess } from './lib/procs.js';
import { table } from './lib/stats.js';

const DURATION_S = Number(process.env.CACHE_BENCH_S ?? 40);
const MAX_BYTES_MB = Number(process.env.CACHE_MAX_MB ?? 64);
const WORDS = Number(process.env.ANSWER_WORDS ?? 400);
const ADMIN = 'bench-admin-key-0123456789';

buildForBench();
pinSelf(0);
const upstream = await startProcess('upstream', 'bench/servers/upstream.ts', { CHUNKS: String(WORDS) }, 0);
const endpoints = JSON.stringify([{ name: 'upstream', url: upstream.url, models: ['bench-model'] }]);

async function run(name: string, cache: Record<string, string>) {
  const gw = await startProcess(
    name,
    'src/main.ts',
    { API_KEY: 'bench-key', ADMIN_API_KEY: ADMIN, ENDPOINTS: endpoints, LOG_LEVEL: 'warn', ...cache },
    HAS_TASKSET ? 1 : undefined,
  );
  resetPeakRss(gw.pid);
  let n = 0;
  const result = await autocannon({
    url: `${gw.url}/v1/chat/completions`,
    connections: 50,
    duration: DURATION_S,
    requests: [
      {
        method: 'POST',
        headers: { authorization: 'Bearer bench-key', 'content-type': 'application/json' },
        setupRequest: (req) => ({
          ...req,
          body: JSON.stringify({
            model: 'bench-model',
            messages: [{ role: 'user', content: `Question number ${n++}: say something.` }],
          }),
        }),
      },
    ],
  });
  const status = (await (
    await fetch(`${gw.url}/api/v1/providers/status`, { headers: { authorization: `Bearer ${ADMIN}` } })
  ).json()) as { cache: { entries?: number | null; bytes?: number | null; hits?: number } };
  const row = {
    requests: result.requests.total,
    rps: result.requests.average,
    errors: result.errors + result.timeouts + result.non2xx,
    peakRssMb: peakRssMb(gw.pid),
    cacheEntries: status.cache.entries ?? 0,
    cacheMb: (status.cache.bytes ?? 0) / 1024 / 1024,
  };
  await gw.stop();
  return row;
}

const off = await run('gateway-cache-off', { CACHE: 'off' });
const on = await run('gateway-cache-memory', { CACHE: 'memory', CACHE_MAX_BYTES: `${MAX_BYTES_MB}mb` });
await upstream.stop();

console.log(
  `\n### Response cache memory: ${DURATION_S} s of distinct requests, 50 connections, ~${WORDS}-word answers\n`,
);
console.log(
  table(
    ['gateway', 'requests', 'req/s', 'errors', 'peak RSS MB', 'cache entries', 'cache MB (own count)'],
    [
      ['cache off', off.requests, off.rps, off.errors, off.peakRssMb, Number.NaN, Number.NaN],
      [
        `CACHE=memory, ${MAX_BYTES_MB}mb`,
        on.requests,
        on.rps,
        on.errors,
        on.peakRssMb,
        on.cacheEntries,
        on.cacheMb,
      ],
    ],
  ),
);
const extra = on.peakRssMb - off.peakRssMb;
const full = on.cacheMb >= MAX_BYTES_MB * 0.9;
console.log(
  `\n- cache filled to its bound: ${full ? 'yes' : 'NO'} (${on.cacheMb.toFixed(1)} of ${MAX_BYTES_MB} MB, ` +
    `${on.requests - on.cacheEntries} entries evicted or never kept)`,
);
console.log(
  `- ${extra <= MAX_BYTES_MB ? 'PASS' : 'FAIL'}: peak RSS with the cache full ${on.peakRssMb.toFixed(0)} MB ≤ ` +
    `without ${off.peakRssMb.toFixed(0)} MB + bound ${MAX_BYTES_MB} MB (the cache adds ${extra.toFixed(0)} MB)`,
);
process.exit(extra <= MAX_BYTES_MB && full && on.errors === 0 && off.errors === 0 ? 0 : 1);
