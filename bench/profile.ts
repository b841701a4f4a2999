/**
 * `npm run bench:profile`: a CPU profile of the gateway (built, plain node) under one load pattern, for
 * finding what to make cheaper. PROFILE_LOAD=closed (50 connections, JSON) or streams (100 paced
 * streams); PROFILE_S seconds (10); PROFILE_KEYS=1 calls with a virtual key whose limits are counted in Redis. Writes a .cpuprofile into PROFILE_DIR (./profiles) and prints the
 * functions with the most self time. Only 127.0.0.1 is targeted.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cannon, streams } from './lib/load.js';
import { createLimitedKey, keysGatewayEnv } from './lib/keys.js';
import { buildForBench, CORES, cpuMs, pinSelf, startProcess } from './lib/procs.js';
import { table } from './lib/stats.js';
import { HEAP_GROWING_PERCENT } from '../src/server/runtime-flags.js';

const LOAD = process.env.PROFILE_LOAD ?? 'closed';
const SECONDS = Number(process.env.PROFILE_S ?? 10);
const DIR = path.resolve(process.env.PROFILE_DIR ?? 'profiles');
const TOP = Number(process.env.PROFILE_TOP ?? 40);
/** PROFILE_TARGET=floor-express (or floor-node) profiles a floor instead, for comparison. */
const TARGET = process.env.PROFILE_TARGET ?? 'gateway';

buildForBench();
pinSelf(0);
mkdirSync(DIR, { recursive: true });
const upstream = await startProcess('upstream', 'bench/servers/upstream.ts', {}, 0);
const KEYS = process.env.PROFILE_KEYS === '1';
const keysDir = KEYS ? mkdtempSync(path.join(os.tmpdir(), 'profile-keys-')) : undefined;
const keysEnv = keysDir
  ? keysGatewayEnv(
      keysDir,
      process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
      `profile-${process.pid}:`,
    )
  : {};
const gateway = await startProcess(
  TARGET,
  TARGET === 'gateway' ? 'src/main.ts' : `bench/servers/${TARGET}.ts`,
  {
    UPSTREAM_URL: upstream.url,
    ...keysEnv,
    API_KEY: 'bench-key',
    LOG_LEVEL: 'info',
    ENDPOINTS: JSON.stringify([{ name: 'upstream', url: upstream.url, models: ['bench-model'] }]),
  },
  CORES > 1 ? 1 : undefined,
  [
    '--cpu-prof',
    `--cpu-prof-dir=${DIR}`,
    // A floor runs with the heap setting the gateway applies to itself, as in npm run bench.
    ...(TARGET === 'gateway' ? [] : [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`]),
  ],
);
// PROFILE_KEYS=1: a virtual key in a team, limits at three scopes counted in Redis (as bench:ab AB_KEYS).
const key = KEYS ? await createLimitedKey(gateway.url) : undefined;
const before = new Set(readdirSync(DIR));
await cannon(gateway.url, { connections: 50, durationS: 5, key });
const cpuBefore = cpuMs(gateway.pid);
let requests: number;
if (LOAD === 'streams') {
  const r = await streams(gateway.url, {
    concurrency: 100,
    durationMs: SECONDS * 1000,
    chunks: 20,
    paced: true,
    staggerMs: 200,
  });
  requests = r.streams;
} else {
  requests = (await cannon(gateway.url, { connections: 50, durationS: SECONDS, key })).requests;
}
const cpu = cpuMs(gateway.pid) - cpuBefore;
await gateway.stop('SIGTERM');
await upstream.stop();
console.log(`${requests} requests, ${(cpu / requests).toFixed(3)} CPU ms per request`);

const file = readdirSync(DIR).find((f) => !before.has(f) && f.endsWith('.cpuprofile'));
if (!file) throw new Error('no profile written');
interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
const profile = JSON.parse(readFileSync(path.join(DIR, file), 'utf8')) as {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
};
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const n = byId.get(id)!;
  const f = n.callFrame;
  const where = f.url
    ? `${f.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/')}:${f.lineNumber + 1}`
    : '';
  const key = `${f.functionName || '(anonymous)'} ${where}`;
  const dt = profile.timeDeltas[i] ?? 0;
  total += dt;
  self.set(key, (self.get(key) ?? 0) + dt);
});
// Self time by package (node_modules/<name>), our code (dist/) and Node's own.
const byPackage = new Map<string, number>();
profile.samples.forEach((id, i) => {
  const url = byId.get(id)!.callFrame.url;
  const pkg =
    /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ??
    (url.includes('/dist/')
      ? 'gateway (dist/)'
      : url.startsWith('node:')
        ? 'node:*'
        : url === ''
          ? '(native, GC, idle)'
          : url);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
console.log(
  table(
    ['where', 'self %'],
    [...byPackage]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([k, v]) => [k, (100 * v) / total]),
  ),
);
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, TOP);
console.log(
  table(
    ['function', 'self %'],
    rows.map(([k, v]) => [k, (100 * v) / total]),
  ),
);
console.log(`profile: ${path.join(DIR, file)}`);
process.exit(0);
