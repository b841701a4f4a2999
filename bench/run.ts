/**
 * `npm run bench`: the gateway against the floor of our stack (Express 5 + undici), the floor of Node
 * (node:http + undici) and the upstream itself, scenario by scenario, each repeated and alternated, with
 * medians reported. Proxies run on one core and the load generator and upstream on the other when
 * taskset is available. Only 127.0.0.1 is ever targeted. See bench/README.md.
 *
 * BENCH_REPS (5), BENCH_DURATION_S (5), BENCH_STREAMS_1000 (1 to run 1000 streams, default on),
 * BENCH_WORKERS (1 to compare WORKERS=1 and 2, default on), BENCH_REDIS_URL (the Redis of the virtual
 * keys scenario: redis://127.0.0.1:6379; skipped when none answers).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  buildForBench,
  cpuMs,
  CORES,
  HAS_TASKSET,
  peakRssMb,
  pinSelf,
  resetPeakRss,
  startProcess,
  type Proc,
} from './lib/procs.js';
import { createLimitedKey, keysGatewayEnv } from './lib/keys.js';
import { cannon, sequential, streams } from './lib/load.js';
import { median, summarize, table } from './lib/stats.js';
import { HEAP_GROWING_PERCENT } from '../src/server/runtime-flags.js';

const REPS = Number(process.env.BENCH_REPS ?? 5);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const RUN_1000 = process.env.BENCH_STREAMS_1000 !== '0';
const RUN_WORKERS = process.env.BENCH_WORKERS !== '0';
const CHUNKS = 20;
/** Paced streams: the upstream's delay between chunks, like tokens from a GPU. */
const CHUNK_DELAY_MS = 10;
/** BENCH_ONLY=serial,closed,open,stream1,streams100,streams1000,failover,keys,cache,workers runs only those. */
const ONLY = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
/** BENCH_VERBOSE=1 prints every repetition's row (to stderr), not only the medians. */
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const on = (scenario: string) => !ONLY || ONLY.includes(scenario);
const PROXY_CPU = CORES > 1 ? 1 : undefined;
/** The floors run with the V8 heap setting the gateway applies to itself, so that only the code differs. */
const FLOOR_NODE_ARGS = [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`];
const LOAD_CPU = 0;

type Row = Record<string, number>;
interface Target {
  name: string;
  proc: Proc | undefined;
  url: string;
  /** A client key other than the static bench key (a virtual key). */
  key?: string;
}

buildForBench();
pinSelf(LOAD_CPU);
const upstream = await startProcess(
  'upstream',
  'bench/servers/upstream.ts',
  { CHUNKS: String(CHUNKS), CHUNK_DELAY_MS: String(CHUNK_DELAY_MS) },
  LOAD_CPU,
);
const failing = await startProcess('failing', 'bench/servers/upstream.ts', { FAIL_STATUS: '503' }, LOAD_CPU);
const gatewayEnv = (endpoints: object[], extra: Record<string, string> = {}) => ({
  API_KEY: 'bench-key',
  ENDPOINTS: JSON.stringify(endpoints),
  LOG_LEVEL: 'info',
  ...extra,
});
const upstreamEndpoint = { name: 'upstream', url: upstream.url, models: ['bench-model'] };
const procs = {
  floorNode: await startProcess(
    'floor-node',
    'bench/servers/floor-node.ts',
    { UPSTREAM_URL: upstream.url },
    PROXY_CPU,
    FLOOR_NODE_ARGS,
  ),
  floorExpress: await startProcess(
    'floor-express',
    'bench/servers/floor-express.ts',
    { UPSTREAM_URL: upstream.url },
    PROXY_CPU,
    FLOOR_NODE_ARGS,
  ),
  gateway: await startProcess('gateway', 'src/main.ts', gatewayEnv([upstreamEndpoint]), PROXY_CPU),
  failover: await startProcess(
    'gateway-failover',
    'src/main.ts',
    gatewayEnv([
      { name: 'primary', url: failing.url, models: ['bench-model'], priority: 1 },
      { ...upstreamEndpoint, priority: 2 },
    ]),
    PROXY_CPU,
  ),
};
const targets: Target[] = [
  { name: 'direct', proc: undefined, url: upstream.url },
  { name: 'node:http + undici', proc: procs.floorNode, url: procs.floorNode.url },
  { name: 'express + undici (floor)', proc: procs.floorExpress, url: procs.floorExpress.url },
  { name: 'gateway', proc: procs.gateway, url: procs.gateway.url },
];

/** Runs `measure` on every target `REPS` times, alternating the order, and keeps the median of each field. */
interface Results {
  /** Per target, the median of each field over the repetitions. */
  medians: Map<string, Row>;
  /** Per target, every repetition's row, in order. */
  reps: Map<string, Row[]>;
}

async function scenario(
  title: string,
  list: Target[],
  measure: (t: Target) => Promise<Row>,
): Promise<Results> {
  const samples = new Map<string, Row[]>(list.map((t) => [t.name, []]));
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? list : [...list].reverse();
    for (const target of order) {
      const pid = target.proc?.pid;
      if (pid) resetPeakRss(pid);
      const cpuBefore = pid ? cpuMs(pid) : 0;
      const row = await measure(target);
      if (pid) {
        row.cpuMsPerReq = (cpuMs(pid) - cpuBefore) / Math.max(1, row.requests ?? 1);
        row.peakRssMb = peakRssMb(pid);
      }
      samples.get(target.name)!.push(row);
      if (VERBOSE) {
        const fields = Object.entries(row).map(([k, v]) => `${k}=${Number(v.toFixed(3))}`);
        process.stderr.write(`  ${title} | rep ${rep + 1} | ${target.name}: ${fields.join(' ')}\n`);
      }
    }
  }
  const medians = new Map<string, Row>();
  for (const [name, rows] of samples) {
    const keys = Object.keys(rows[0] ?? {});
    medians.set(name, Object.fromEntries(keys.map((k) => [k, median(rows.map((r) => r[k]!))])));
  }
  process.stdout.write(`\n### ${title}\n\n`);
  return { medians, reps: samples };
}

/**
 * The median, over repetitions, of `f` applied to two targets' rows of the same repetition. The
 * gateway and the floor are measured one right after the other in every repetition, so a machine that
 * speeds up or slows down between repetitions moves both sides of each pair alike: the targets are
 * checked on these paired comparisons rather than on each side's own median.
 */
function paired(results: Results, a: string, b: string, f: (a: Row, b: Row) => number): number {
  const ra = results.reps.get(a)!;
  const rb = results.reps.get(b)!;
  return median(ra.map((row, i) => f(row, rb[i]!)));
}

function print({ medians: results }: Results, columns: Array<[string, string]>): void {
  const direct = results.get('direct');
  console.log(
    table(
      ['target', ...columns.map(([, label]) => label)],
      [...results].map(([name, row]) => [
        name,
        ...columns.map(([key]) => {
          if (key === 'addedP50') return direct && name !== 'direct' ? row.p50! - direct.p50! : Number.NaN;
          return row[key] ?? Number.NaN;
        }),
      ]),
    ),
  );
}

const checks: Array<{ what: string; ok: boolean; detail: string }> = [];
const check = (what: string, ok: boolean, detail: string) => checks.push({ what, ok, detail });
const GW = 'gateway';
const FLOOR = 'express + undici (floor)';

// Warm-up, the same for every target: JIT (the more code, the longer it takes), connection pools.
for (const t of targets) {
  await cannon(t.url, { connections: 50, durationS: 5 });
  await streams(t.url, { concurrency: 50, durationMs: 2000, chunks: CHUNKS });
}

if (on('serial')) {
  const serial = await scenario(
    'One request at a time (JSON, 2000 sequential requests)',
    targets,
    async (t) => {
      const { latenciesMs, errors } = await sequential(t.url, 2000);
      const s = summarize(latenciesMs);
      return { requests: latenciesMs.length, p50: s.p50, p90: s.p90, p99: s.p99, errors };
    },
  );
  print(serial, [
    ['p50', 'p50 ms'],
    ['p90', 'p90 ms'],
    ['p99', 'p99 ms'],
    ['addedP50', 'added p50 ms'],
    ['cpuMsPerReq', 'CPU ms/req'],
    ['errors', 'errors'],
  ]);
  // (gateway - direct) - (floor - direct): what the gateway adds over what the floor adds.
  const extra = paired(serial, GW, FLOOR, (g, f) => g.p50! - f.p50!);
  check('added p50, one at a time, ≤ floor + 0.3 ms', extra <= 0.3, signedMs(extra));
}

if (on('closed')) {
  const closed = await scenario(
    `50 connections, closed loop (JSON, ${DURATION_S} s)`,
    targets,
    async (t) => ({
      ...(await cannon(t.url, { connections: 50, durationS: DURATION_S })),
    }),
  );
  print(closed, [
    ['rps', 'req/s'],
    ['p50', 'p50 ms'],
    ['p90', 'p90 ms'],
    ['p99', 'p99 ms'],
    ['cpuMsPerReq', 'CPU ms/req'],
    ['peakRssMb', 'peak RSS MB'],
    ['errors', 'errors'],
  ]);
  const cpuRatio = paired(closed, GW, FLOOR, (g, f) => g.cpuMsPerReq! / f.cpuMsPerReq!);
  check('CPU per request at 50 connections ≤ 1.3× floor', cpuRatio <= 1.3, `${cpuRatio.toFixed(2)}×`);
  const rssRatio50 = paired(closed, GW, FLOOR, (g, f) => g.peakRssMb! / f.peakRssMb!);
  check('peak RSS at 50 connections ≤ 1.2× floor', rssRatio50 <= 1.2, `${rssRatio50.toFixed(2)}×`);
}

if (on('open')) {
  const open = await scenario(
    `400 requests per second, open loop (JSON, ${DURATION_S} s)`,
    targets,
    async (t) => ({
      ...(await cannon(t.url, { connections: 50, durationS: DURATION_S, rate: 400 })),
    }),
  );
  print(open, [
    ['rps', 'req/s'],
    ['p50', 'p50 ms'],
    ['p90', 'p90 ms'],
    ['p99', 'p99 ms'],
    ['cpuMsPerReq', 'CPU ms/req'],
    ['errors', 'errors'],
  ]);
}

if (on('stream1')) {
  const one = await scenario('1 stream at a time (20 chunks, 500 streams)', targets, async (t) => {
    const r = await streams(t.url, { concurrency: 1, count: 500, chunks: CHUNKS });
    return { requests: r.streams, ttfbP50: r.ttfbP50, ttfbP99: r.ttfbP99, totalP50: r.totalP50, bad: r.bad };
  });
  print(one, [
    ['ttfbP50', 'TTFB p50 ms'],
    ['ttfbP99', 'TTFB p99 ms'],
    ['totalP50', 'stream p50 ms'],
    ['cpuMsPerReq', 'CPU ms/stream'],
    ['bad', 'bad streams'],
  ]);
  const ttfb1 = paired(one, GW, FLOOR, (g, f) => g.ttfbP50! - f.ttfbP50!);
  check('TTFB at 1 stream ≤ floor + 0.5 ms', ttfb1 <= 0.5, signedMs(ttfb1));
}

/** `concurrency` clients streaming paced answers back to back for the scenario's duration. */
async function concurrentStreams(concurrency: number): Promise<Results> {
  const results = await scenario(
    `${concurrency} concurrent streams (20 chunks 10 ms apart, ${DURATION_S} s)`,
    targets,
    async (t) => {
      const r = await streams(t.url, {
        concurrency,
        durationMs: DURATION_S * 1000,
        chunks: CHUNKS,
        paced: true,
        staggerMs: CHUNKS * CHUNK_DELAY_MS,
      });
      return {
        requests: r.streams,
        ttfbP50: r.ttfbP50,
        ttfbP99: r.ttfbP99,
        totalP50: r.totalP50,
        bad: r.bad,
      };
    },
  );
  print(results, [
    ['requests', 'streams'],
    ['ttfbP50', 'TTFB p50 ms'],
    ['ttfbP99', 'TTFB p99 ms'],
    ['cpuMsPerReq', 'CPU ms/stream'],
    ['peakRssMb', 'peak RSS MB'],
    ['bad', 'bad streams'],
  ]);
  return results;
}

if (on('streams100')) {
  const hundred = await concurrentStreams(100);
  // "No worse" within 5%: the run-to-run spread of a median on this kind of machine.
  const ttfbRatio = paired(hundred, GW, FLOOR, (g, f) => g.ttfbP50! / f.ttfbP50!);
  check(
    'TTFB at 100 streams no worse than floor (±5%)',
    ttfbRatio <= 1.05,
    `${ttfbRatio.toFixed(2)}× (${hundred.medians.get(GW)!.ttfbP50!.toFixed(2)} vs ${hundred.medians.get(FLOOR)!.ttfbP50!.toFixed(2)} ms)`,
  );
  const rssRatio100 = paired(hundred, GW, FLOOR, (g, f) => g.peakRssMb! / f.peakRssMb!);
  check('peak RSS at 100 streams ≤ 1.2× floor', rssRatio100 <= 1.2, `${rssRatio100.toFixed(2)}×`);
}

if (RUN_1000 && on('streams1000')) {
  const thousand = await concurrentStreams(1000);
  const bad = thousand.reps.get(GW)!.reduce((sum, r) => sum + r.bad!, 0);
  check('every chunk of every stream intact at 1000 streams', bad === 0, `${bad} bad in all runs`);
  const peak = Math.max(...thousand.reps.get(GW)!.map((r) => r.peakRssMb!));
  check('peak RSS at 1000 streams ≤ 250 MB', peak <= 250, `${peak.toFixed(0)} MB (highest run)`);
}

if (on('failover')) {
  // Warm both alike (JIT, pools: the failover gateway has served nothing yet), and let the failover
  // gateway eject its failing primary.
  for (const url of [procs.gateway.url, procs.failover.url])
    await cannon(url, { connections: 50, durationS: 5 });
  const failoverTargets: Target[] = [
    { name: 'gateway, no failure', proc: procs.gateway, url: procs.gateway.url },
    { name: 'gateway, priority 1 answers 503', proc: procs.failover, url: procs.failover.url },
  ];
  const failover = await scenario(
    `Failover: 50 connections, closed loop (JSON, ${DURATION_S} s)`,
    failoverTargets,
    async (t) => ({
      ...(await cannon(t.url, { connections: 50, durationS: DURATION_S })),
    }),
  );
  print(failover, [
    ['rps', 'req/s'],
    ['p50', 'p50 ms'],
    ['p99', 'p99 ms'],
    ['cpuMsPerReq', 'CPU ms/req'],
    ['errors', 'errors'],
  ]);
  const FO = 'gateway, priority 1 answers 503';
  const errors = failover.reps.get(FO)!.reduce((sum, r) => sum + r.errors!, 0);
  check('failover: zero errors', errors === 0, `${errors} errors in all runs`);
  const share = paired(failover, FO, 'gateway, no failure', (fo, base) => fo.rps! / base.rps!);
  check('failover: throughput ≥ 90% of no failure', share >= 0.9, `${(100 * share).toFixed(0)}%`);
}

if (on('keys')) await keysScenario();
if (on('cache')) await cacheScenario();

/**
 * Cache hits: the same request again and again (every one after the first is a hit), from the memory
 * cache and, when Redis answers, from the Redis cache. A hit goes nowhere upstream, so its CPU is set
 * against what the floor spends proxying one request.
 */
async function cacheScenario(): Promise<void> {
  const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const withRedis = await reachable(redisUrl);
  const memory = await startProcess(
    'gateway-cache-memory',
    'src/main.ts',
    gatewayEnv([upstreamEndpoint], { CACHE: 'memory' }),
    PROXY_CPU,
  );
  const redis = withRedis
    ? await startProcess(
        'gateway-cache-redis',
        'src/main.ts',
        gatewayEnv([upstreamEndpoint], {
          CACHE: 'redis',
          REDIS_URL: redisUrl,
          REDIS_PREFIX: `bench-cache-${process.pid}:`,
        }),
        PROXY_CPU,
      )
    : undefined;
  const MEMORY = 'gateway, cache hits (memory)';
  const REDIS = 'gateway, cache hits (Redis)';
  const list: Target[] = [
    { name: FLOOR, proc: procs.floorExpress, url: procs.floorExpress.url },
    { name: GW, proc: procs.gateway, url: procs.gateway.url },
    { name: MEMORY, proc: memory, url: memory.url },
    ...(redis ? [{ name: REDIS, proc: redis, url: redis.url }] : []),
  ];
  for (const t of list.slice(2)) await cannon(t.url, { connections: 50, durationS: 5 });
  const serial = await scenario(
    'Cache hits: one request at a time (JSON, 2000 requests)',
    list,
    async (t) => {
      const { latenciesMs, errors } = await sequential(t.url, 2000);
      const s = summarize(latenciesMs);
      return { requests: latenciesMs.length, p50: s.p50, p99: s.p99, errors };
    },
  );
  print(serial, [
    ['p50', 'p50 ms'],
    ['p99', 'p99 ms'],
    ['cpuMsPerReq', 'CPU ms/req'],
    ['errors', 'errors'],
  ]);
  const closed = await scenario(`Cache hits: 50 connections (JSON, ${DURATION_S} s)`, list, async (t) => ({
    ...(await cannon(t.url, { connections: 50, durationS: DURATION_S })),
  }));
  print(closed, [
    ['rps', 'req/s'],
    ['p50', 'p50 ms'],
    ['p99', 'p99 ms'],
    ['cpuMsPerReq', 'CPU ms/req'],
    ['peakRssMb', 'peak RSS MB'],
    ['errors', 'errors'],
  ]);
  for (const name of redis ? [MEMORY, REDIS] : [MEMORY]) {
    const cpu = paired(closed, name, FLOOR, (c, f) => c.cpuMsPerReq! / f.cpuMsPerReq!);
    check(`${name}: CPU per hit ≤ floor's CPU per proxied request`, cpu <= 1.0, `${cpu.toFixed(2)}×`);
    const errors = [...closed.reps.get(name)!, ...serial.reps.get(name)!].reduce((n, r) => n + r.errors!, 0);
    check(`${name}: zero errors`, errors === 0, `${errors} errors in all runs`);
  }
  if (!redis) console.log(`\n(Redis cache skipped: no Redis at ${redisUrl}; set BENCH_REDIS_URL)\n`);
  await memory.stop();
  await redis?.stop();
}

/**
 * Virtual keys with limits counted in Redis: a key in a team, each with rpm, tpm and maxParallel (set
 * high: nothing is refused, every check runs), plus a global limit. Against the same gateway with the
 * static key and against the floor.
 */
async function keysScenario(): Promise<void> {
  const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (!(await reachable(redisUrl))) {
    console.log(`\n### Virtual keys and limits: skipped, no Redis at ${redisUrl} (set BENCH_REDIS_URL)\n`);
    return;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-keys-'));
  const keysGateway = await startProcess(
    'gateway-keys',
    'src/main.ts',
    gatewayEnv([upstreamEndpoint], keysGatewayEnv(dir, redisUrl, `bench-${process.pid}:`)),
    PROXY_CPU,
  );
  const key = await createLimitedKey(keysGateway.url);
  const KEYED = 'gateway, virtual key, limits on Redis';
  const list: Target[] = [
    { name: FLOOR, proc: procs.floorExpress, url: procs.floorExpress.url },
    { name: GW, proc: procs.gateway, url: procs.gateway.url },
    { name: KEYED, proc: keysGateway, url: keysGateway.url, key },
  ];
  await cannon(keysGateway.url, { connections: 50, durationS: 5, key });
  const serial = await scenario(
    'Virtual keys and limits: one request at a time (JSON, 2000 requests)',
    list,
    async (t) => {
      const { latenciesMs, errors } = await sequential(t.url, 2000, t.key);
      const s = summarize(latenciesMs);
      return { requests: latenciesMs.length, p50: s.p50, p90: s.p90, p99: s.p99, errors };
    },
  );
  print(serial, [
    ['p50', 'p50 ms'],
    ['p99', 'p99 ms'],
    ['cpuMsPerReq', 'CPU ms/req'],
    ['errors', 'errors'],
  ]);
  const added = paired(serial, KEYED, GW, (k, g) => k.p50! - g.p50!);
  check('virtual key + limits on Redis: added p50 ≤ static key + 0.5 ms', added <= 0.5, signedMs(added));
  const closed = await scenario(
    `Virtual keys and limits: 50 connections (JSON, ${DURATION_S} s)`,
    list,
    async (t) => ({
      ...(await cannon(t.url, { connections: 50, durationS: DURATION_S, key: t.key })),
    }),
  );
  print(closed, [
    ['rps', 'req/s'],
    ['p50', 'p50 ms'],
    ['p99', 'p99 ms'],
    ['cpuMsPerReq', 'CPU ms/req'],
    ['errors', 'errors'],
  ]);
  const errors = [...closed.reps.get(KEYED)!, ...serial.reps.get(KEYED)!].reduce(
    (sum, r) => sum + r.errors!,
    0,
  );
  check('virtual key + limits on Redis: zero errors', errors === 0, `${errors} errors in all runs`);
  const cpu = paired(closed, KEYED, FLOOR, (k, f) => k.cpuMsPerReq! / f.cpuMsPerReq!);
  check('virtual key + limits on Redis: CPU per request ≤ 1.0× floor', cpu <= 1.0, `${cpu.toFixed(2)}×`);
  await keysGateway.stop();
  rmSync(dir, { recursive: true, force: true });
}

/** Whether something answers on a redis:// URL's host and port. */
function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port || 6379), hostname);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => done(true));
  });
}

if (RUN_WORKERS && on('workers')) {
  // Unpinned: each configuration gets the whole machine (2 cores here, shared with the load generator).
  const w1 = await startProcess(
    'gateway-w1',
    'src/main.ts',
    gatewayEnv([upstreamEndpoint], { WORKERS: '1' }),
  );
  const w2 = await startProcess(
    'gateway-w2',
    'src/main.ts',
    gatewayEnv([upstreamEndpoint], { WORKERS: '2' }),
  );
  for (const w of [w1, w2]) await cannon(w.url, { connections: 10, durationS: 2 });
  const workers = await scenario(
    `WORKERS=1 vs 2: 50 connections, closed loop (JSON, ${DURATION_S} s, unpinned)`,
    [
      { name: 'WORKERS=1', proc: undefined, url: w1.url },
      { name: 'WORKERS=2', proc: undefined, url: w2.url },
    ],
    async (t) => ({ ...(await cannon(t.url, { connections: 50, durationS: DURATION_S })) }),
  );
  print(workers, [
    ['rps', 'req/s'],
    ['p50', 'p50 ms'],
    ['p99', 'p99 ms'],
    ['errors', 'errors'],
  ]);
  await Promise.all([w1.stop(), w2.stop()]);
}

console.log(
  `\n### Targets (medians over ${REPS} runs of gateway-vs-floor pairs; proxies pinned: ${HAS_TASKSET && PROXY_CPU !== undefined ? `core ${PROXY_CPU}, load on core ${LOAD_CPU}` : 'no'})\n`,
);
console.log(
  table(
    ['target', 'result', 'measured'],
    checks.map((c) => [c.what, c.ok ? 'PASS' : 'FAIL', c.detail]),
  ),
);

await Promise.all([upstream, failing, ...Object.values(procs)].map((p) => p.stop()));
process.exit(0);

/** A difference in ms with its sign: "+0.140 ms", "-0.005 ms". */
function signedMs(ms: number): string {
  return `${ms < 0 ? '-' : '+'}${Math.abs(ms).toFixed(3)} ms`;
}
