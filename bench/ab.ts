/**
 * `npm run bench:ab`: a quick A/B of CPU time per request, the gateway against the Express floor,
 * in alternating short pairs so that a noisy machine moves both sides of each pair alike. For
 * development; `npm run bench` is the full benchmark. AB_PAIRS (8), AB_S (3 s per side), AB_LOAD
 * (closed: 50 connections JSON; streams: 100 paced streams), AB_MODE (alternate, or together: both
 * loaded at once on the shared core), AB_GATEWAY (a compiled variant, .js) and AB_GATEWAY_ENV (JSON).
 * AB_KEYS=1: the gateway is called with a virtual key in a team, with limits at the key, team and global
 * scopes counted in Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379) and the ledger writing: the
 * setup of `npm run bench`'s keys scenario, in alternating pairs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cannon, streams } from './lib/load.js';
import { createLimitedKey, keysGatewayEnv } from './lib/keys.js';
import { buildForBench, CORES, cpuMs, pinSelf, startProcess, type Proc } from './lib/procs.js';
import { median } from './lib/stats.js';
import { HEAP_GROWING_PERCENT } from '../src/server/runtime-flags.js';

const PAIRS = Number(process.env.AB_PAIRS ?? 8);
const SECONDS = Number(process.env.AB_S ?? 3);
const LOAD = process.env.AB_LOAD ?? 'closed';
const TOGETHER = process.env.AB_MODE === 'together';
const PROXY_CPU = CORES > 1 ? 1 : undefined;
/** AB_NODE_ARGS: extra node flags for both sides (space-separated), e.g. to try a V8 setting on both. */
const NODE_ARGS = (process.env.AB_NODE_ARGS ?? '').split(' ').filter(Boolean);

buildForBench();
pinSelf(0);
const upstream = await startProcess('upstream', 'bench/servers/upstream.ts', {}, 0);
const floor = await startProcess(
  'floor-express',
  'bench/servers/floor-express.ts',
  { UPSTREAM_URL: upstream.url },
  PROXY_CPU,
  // The V8 heap setting the gateway applies to itself, so that only the code differs.
  [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`, ...NODE_ARGS],
);
const KEYS = process.env.AB_KEYS === '1';
const keysDir = KEYS ? mkdtempSync(path.join(os.tmpdir(), 'ab-keys-')) : undefined;
const keysEnv = keysDir
  ? keysGatewayEnv(keysDir, process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379', `ab-${process.pid}:`)
  : {};
const gateway = await startProcess(
  'gateway',
  // AB_GATEWAY: another compiled gateway (a .js path), e.g. a variant under test.
  process.env.AB_GATEWAY ?? 'src/main.ts',
  {
    ...(process.env.AB_GATEWAY_ENV ? (JSON.parse(process.env.AB_GATEWAY_ENV) as Record<string, string>) : {}),
    ...keysEnv,
    API_KEY: 'bench-key',
    LOG_LEVEL: process.env.AB_LOG_LEVEL ?? 'info',
    ENDPOINTS: JSON.stringify([{ name: 'upstream', url: upstream.url, models: ['bench-model'] }]),
  },
  PROXY_CPU,
  NODE_ARGS,
);

// AB_KEYS: a team and a key in it, each with limits high enough that nothing is refused.
const key = KEYS ? await createLimitedKey(gateway.url) : undefined;

async function cpuPerRequest(p: Proc): Promise<number> {
  const k = p === gateway ? key : undefined;
  const before = cpuMs(p.pid);
  const requests =
    LOAD === 'streams'
      ? (
          await streams(p.url, {
            concurrency: 100,
            durationMs: SECONDS * 1000,
            chunks: 20,
            paced: true,
            staggerMs: 200,
            key: k,
          })
        ).streams
      : (await cannon(p.url, { connections: 50, durationS: SECONDS, key: k })).requests;
  return (cpuMs(p.pid) - before) / requests;
}

// Warm-up long enough for the JIT to settle on both sides.
for (const p of [floor, gateway])
  await cannon(p.url, { connections: 50, durationS: 5, key: p === gateway ? key : undefined });
const ratios: number[] = [];
for (let i = 0; i < PAIRS; i++) {
  const [a, b] = i % 2 === 0 ? [floor, gateway] : [gateway, floor];
  // AB_MODE=together loads both at the same time (sharing the core, so that a noisy neighbour slows
  // both alike); the default alternates them.
  const [first, second] = TOGETHER
    ? await Promise.all([cpuPerRequest(a), cpuPerRequest(b)])
    : [await cpuPerRequest(a), await cpuPerRequest(b)];
  const [f, g] = a === floor ? [first, second] : [second, first];
  ratios.push(g / f);
  console.log(
    `pair ${i + 1}: floor ${f.toFixed(3)} ms, gateway ${g.toFixed(3)} ms, ratio ${(g / f).toFixed(2)}`,
  );
}
console.log(`median ratio ${median(ratios).toFixed(2)} (gateway CPU per request / floor's)`);
await Promise.all([upstream, floor, gateway].map((p) => p.stop()));
if (keysDir) rmSync(keysDir, { recursive: true, force: true });
process.exit(0);
